"""Names and places the command line needs before anything heavy is imported.

Building `virtuna`'s argument parser (and so `virtuna --help`) reads only this module; the
modules that use these constants import them from here too, so each has one definition.
"""

from __future__ import annotations

from pathlib import Path

# The repository root when installed editable: bundled data lives under PROJECT_ROOT / 'data'.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Executed job notebooks, their HTML and the reports index (reports/index.html).
REPORTS_DIR = PROJECT_ROOT / "reports"
# Every format `virtuna.ingest` reads (`virtuna ingest --format`); see that module's docstring.
INGEST_FORMATS = (
    "apify",
    "drawrowfly",
    "apify_csv",
    "timeline_csv",
    "trending_csv",
    "vn_web_csv",
    "suggested_csv",
)
# `virtuna jobs run`'s exit status when another run of the job holds its lock (sysexits'
# EX_TEMPFAIL: nothing ran, nothing failed); a generated Airflow DAG marks such a run skipped.
LOCKED_EXIT = 75
