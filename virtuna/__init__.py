"""Virtuna: predict, before posting, whether a TikTok post will resonate.

    from virtuna import predict
    result = predict("Wait for it... #fyp #cooking", creator_handle="chef_ana")
    result.overall_score, result.confidence_label, result.warnings

`apredict` is the async form; `score_batch` (in `virtuna.engine.batch`) scores many drafts
without LLMs, for notebooks and backtests.
"""

from __future__ import annotations

# Only light imports here: every `import virtuna.<module>` (and `virtuna --help`) runs this file
# first. The engine, and asyncio itself, are imported by the calls that need them.
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtuna.engine.pipeline import Engine
    from virtuna.engine.schema import PredictionResult

__version__ = "0.1.0"
__all__ = ["__version__", "apredict", "predict"]


async def apredict(
    content_text: str | None = None,
    /,
    *,
    engine: Engine | None = None,
    store: bool = True,
    **fields: Any,
) -> PredictionResult:
    """Analyse one draft (async). Fields are those of `virtuna.engine.schema.AnalysisInput`."""
    from virtuna.engine.pipeline import Engine

    data = dict(fields)
    if content_text is not None:
        data["content_text"] = content_text
    if engine is not None:
        return await engine.analyze(data, store=store)
    async with Engine() as own:
        return await own.analyze(data, store=store)


def predict(content_text: str | None = None, /, **fields: Any) -> PredictionResult:
    """Analyse one draft and wait for the result (works inside Jupyter's running loop too)."""
    import asyncio
    import concurrent.futures

    coroutine = apredict(content_text, **fields)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False  # run outside the handler, so an error is not shown chained to this
    else:
        running = True
    if not running:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
