"""The DuckDB store: connection policy, migrations, and one module per table family."""

from virtuna.store.connection import (
    MEMORY,
    StoreLockedError,
    connect,
    mark_changed,
    one,
    open_connection,
    retry_conflicts,
    run,
    transaction,
    utcnow,
)
from virtuna.store.schema import StoreSchemaError

__all__ = [
    "MEMORY",
    "StoreLockedError",
    "StoreSchemaError",
    "connect",
    "mark_changed",
    "one",
    "open_connection",
    "retry_conflicts",
    "run",
    "transaction",
    "utcnow",
]
