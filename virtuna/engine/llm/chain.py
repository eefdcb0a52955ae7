"""One role's providers in order: each is tried until one answers.

A provider without a key is skipped, one whose circuit breaker is open refuses at once, and
one that fails (errors, timeouts, invalid replies after its retries, a refusal) hands the task
to the next. The reply is the answering provider's (its provider and model name who really
answered) with every attempt of every provider in `calls`, the summed cost, and a warning
naming each provider that was skipped or failed on the way. If none answers, the reply is
the first provider's status with all of that in its warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel

from virtuna.engine.llm.base import LLMReply, ProviderClient, Role, Task
from virtuna.log import get_logger

__all__ = ["FallbackChain"]

M = TypeVar("M", bound=BaseModel)
log = get_logger(__name__)


def _step_warning(index: int, client: ProviderClient, reply: LLMReply[object]) -> str:
    """Why one provider did not answer, worded as primary or fallback."""
    if index == 0:
        return reply.warning or f"{client.label} {reply.status}"
    if reply.status == "not-configured":
        return f"no {client.label} fallback ({client.key_variable} not configured)"
    return f"{client.label} fallback failed too: {reply.warning or reply.status}"


class FallbackChain:
    """The ordered providers of one role (content, reasoning or rules)."""

    def __init__(self, role: Role, clients: Sequence[ProviderClient]) -> None:
        """A chain trying clients in order; at least one is needed."""
        if not clients:
            raise ValueError(f"the {role} chain needs at least one provider")
        self.role = role
        self.clients = tuple(clients)

    @property
    def providers(self) -> list[str]:
        """The providers' names, in order."""
        return [client.provider for client in self.clients]

    async def run(self, task: Task[M]) -> LLMReply[M]:
        """The first answer to task down the chain (never raises for provider trouble)."""
        failed: list[LLMReply[M]] = []
        why: list[str] = []
        for index, client in enumerate(self.clients):
            reply = await client.run(task)
            if reply.ok:
                return self._answered(reply, failed, why, index)
            failed.append(reply)
            why.append(_step_warning(index, client, reply))
        first = failed[0]
        return LLMReply(
            value=None,
            provider=first.provider,
            model=first.model,
            status=first.status,
            cost_cents=sum((r.cost_cents for r in failed), Decimal(0)),
            warning="; ".join(why),
            calls=[call for r in failed for call in r.calls],
        )

    def _answered(
        self, reply: LLMReply[M], failed: list[LLMReply[M]], why: list[str], index: int
    ) -> LLMReply[M]:
        """reply with the attempts, cost and reasons of the providers before it."""
        if not failed:
            return reply
        label = self.clients[index].label
        log.info("llm fallback used", role=self.role, provider=reply.provider, reason=why[0])
        return LLMReply(
            value=reply.value,
            provider=reply.provider,
            model=reply.model,
            status="ok",
            cost_cents=sum((r.cost_cents for r in failed), reply.cost_cents),
            warning="; ".join([*why, f"answered by the {label} fallback ({reply.model})"]),
            calls=[call for r in [*failed, reply] for call in r.calls],
            fallback_used=True,
        )
