"""The prediction pipeline: validate, normalize, two waves of signals, aggregate, store.

    wave 1 (concurrently): Gemini content factors; rules (regex now, semantic rules in one
           batched DeepSeek call); context from the store (creator, trends as of the planned
           post time, the tier model's signal)
    wave 2: DeepSeek behavioural reasoning, which now sees the REAL trend and creator context
           (the original handed it a placeholder because trends ran beside it)

Each LLM call goes down its role's provider order (`Providers`: Gemini, DeepSeek, Anthropic,
OpenAI as configured), so a failing provider's task is answered by the next.

Every stage runs inside `virtuna.log.stage`: its line carries request_id, stage, duration_ms
and cost_cents, it leaves a Sentry breadcrumb, and an exception is captured with the stage as
a tag. A stage that fails degrades the answer with a warning; only invalid input raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from virtuna.config import Settings, get_settings
from virtuna.engine.aggregate import aggregate
from virtuna.engine.baseline import CalibrationBaseline, baseline_path, load_baseline
from virtuna.engine.calibrate import PlattParams, active_calibrations
from virtuna.engine.creator import CreatorContext, creator_context
from virtuna.engine.llm import LLMCallRecord, LLMReply, Providers
from virtuna.engine.llm.schemas import DeepSeekReasoning, GeminiAnalysis, RuleEvaluations
from virtuna.engine.llm.tasks import content_task, reasoning_task, rules_task
from virtuna.engine.normalize import normalize
from virtuna.engine.rules import Rule, RuleResult, load_active_rules, score_rules, semantic_rules
from virtuna.engine.schema import (
    AnalysisInput,
    ContentPayload,
    Factor,
    PredictionResult,
    SuggestionOut,
)
from virtuna.engine.snapshot import shared_snapshot
from virtuna.engine.trends import (
    DEFAULT_MAX_AGE,
    TrendEnrichment,
    load_trend_tables,
    score_trends,
)
from virtuna.log import bind_request, get_logger, scrub_secrets, stage
from virtuna.ml.signal import MLPrediction, TierSignal, load_tier_signal
from virtuna.store import utcnow
from virtuna.store.analyses import LLMCallRow, analysis_rows, llm_call_rows
from virtuna.store.trends import snapshot_as_of
from virtuna.store.writer import StoreWriter

ENGINE_VERSION = "3.0.0"
MAX_FAILED_KEPT = 1000  # failed writes remembered for `stored()`; older ones are only logged
T = TypeVar("T")
log = get_logger(__name__)


@dataclass
class StoreContext:
    """What wave 1 reads from the store for one draft."""

    rules: list[Rule] = field(default_factory=list)
    creator: CreatorContext | None = None
    trends: TrendEnrichment | None = None
    ml: MLPrediction | None = None
    ml_reason: str | None = None
    calibrations: dict[str, PlattParams] = field(default_factory=dict)


@dataclass
class _Run:
    """Per-request bookkeeping: warnings, stage timings, LLM calls, the model that answered."""

    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    calls: list[LLMCallRecord] = field(default_factory=list)
    content_model: str | None = None

    def degrade(self, label: str, exc: BaseException) -> None:
        self.warnings.append(f"{label} unavailable: {type(exc).__name__}: {exc}")

    def take(self, reply: LLMReply[Any]) -> None:
        self.calls.extend(reply.calls)
        if reply.warning:
            self.warnings.append(reply.warning)


class Engine:
    """Long-lived parts of the pipeline: settings, store path, LLM providers, baseline."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        db_path: Path | str | None = None,
        providers: Providers | None = None,
        baseline: CalibrationBaseline | None = None,
        tier_signal: Callable[[Any], TierSignal] = load_tier_signal,
    ) -> None:
        """An engine; providers are built from settings when not given."""
        self.settings = settings or get_settings()
        self.db_path = db_path if db_path is not None else self.settings.virtuna_db_path
        self.providers = providers or Providers.from_settings(self.settings)
        self.baseline = baseline or load_baseline(baseline_path(self.db_path))
        self._tier_signal = tier_signal
        # What predictions read comes from an in-memory copy of the store, shared by the
        # process's engines; what is derived from it (trend tables per snapshot in force, the
        # rule library) is kept until the copy is reloaded.
        self._snapshot = shared_snapshot(self.db_path)
        self._derived: dict[object, Any] = {}
        self._derived_version = -1
        # Results and their LLM calls go through one writer: short batched transactions, so
        # many analyses finishing together do not keep other processes off the store.
        self._writer = StoreWriter(self.db_path, name="analysis-writer")
        self._pending: dict[str, Future[None]] = {}  # analysis id -> its queued write
        self._failed: dict[str, BaseException] = {}  # analysis id -> its write's error
        self._failed_lock = threading.Lock()

    async def aclose(self) -> None:
        """Store every queued result, then close the providers' HTTP connections."""
        await asyncio.to_thread(self._writer.close)
        await self.providers.aclose()

    async def __aenter__(self) -> Engine:
        """The engine itself."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the engine."""
        await self.aclose()

    # ------------------------------------------------------------------ the pipeline

    async def analyze(
        self,
        data: AnalysisInput | dict[str, Any],
        *,
        request_id: str | None = None,
        user_id: str | None = None,
        store: bool = True,
        as_of: datetime | None = None,
        is_backtest: bool = False,
        source_video_id: str | None = None,
    ) -> PredictionResult:
        """Analyse one draft. Raises only pydantic.ValidationError for invalid input."""
        started = time.perf_counter()
        request_id = request_id or secrets.token_hex(6)
        run = _Run()
        with bind_request(request_id):
            with stage("validate") as current:
                checked = (
                    data if isinstance(data, AnalysisInput) else AnalysisInput.model_validate(data)
                )
            run.timings["validate"] = current.duration_ms or 0.0
            with stage("normalize") as current:
                payload = normalize(checked)
            run.timings["normalize"] = current.duration_ms or 0.0
            moment = as_of or payload.planned_post_time or utcnow()

            context_task = asyncio.create_task(
                self._timed(
                    run, "store_context", StoreContext(), self._store_context, payload, moment, run
                )
            )
            gemini_task = asyncio.create_task(
                self._timed(run, "gemini_analysis", None, self._gemini, payload, run)
            )
            context = await context_task
            rules_task = asyncio.create_task(
                self._timed(run, "rule_scoring", None, self._rules, payload, context.rules, run)
            )
            gemini, rules = await asyncio.gather(gemini_task, rules_task)
            if rules is None:
                run.warnings.append("Rule scoring unavailable")
            reasoning = await self._timed(
                run,
                "deepseek_reasoning",
                None,
                self._deepseek,
                payload,
                gemini,
                rules,
                context,
                run,
            )
            result = self._result(
                request_id, payload, run, gemini, reasoning, rules, context, started
            )
            if store:
                await self._timed(
                    run,
                    "store_result",
                    None,
                    self._store,
                    result,
                    payload,
                    run,
                    user_id,
                    is_backtest,
                    source_video_id,
                )
            log.info(
                "analysis complete",
                stage="pipeline",
                duration_ms=result.latency_ms,
                cost_cents=float(result.cost_cents),
                overall_score=result.overall_score,
                confidence=result.confidence_label,
                warnings=len(result.warnings),
            )
            return result

    async def _timed(
        self,
        run: _Run,
        name: str,
        fallback: T,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
    ) -> T:
        """Run one stage: timed, logged, degraded to `fallback` with a warning on failure."""
        current = stage(name)
        try:
            async with current:
                return await fn(*args)
        except Exception as exc:  # a stage never crashes the request
            run.degrade(name.replace("_", " ").capitalize(), exc)
            return fallback
        finally:
            run.timings[name] = current.duration_ms or 0.0

    async def _store_context(
        self, payload: ContentPayload, moment: datetime, run: _Run
    ) -> StoreContext:
        # From a current in-memory copy the read is a few milliseconds of CPU: in a thread it
        # would only contend for the GIL. A (re)load or a store read goes to a thread.
        if self._snapshot.ready(moment):
            return self._read_store(payload, moment, run)
        return await asyncio.to_thread(self._read_store, payload, moment, run)

    def _read_store(self, payload: ContentPayload, moment: datetime, run: _Run) -> StoreContext:
        """Rules, creator, trends, tier model and Platt parameters, each degrading alone."""
        context = StoreContext()
        with contextlib.closing(self._snapshot.cursor()) as con:
            reader = self._snapshot.reader()
            for name, label, read in (
                (
                    "rule_loading",
                    "Rule library",
                    lambda: self._memo("rules", load_active_rules, con),
                ),
                (
                    "creator_context",
                    "Creator context",
                    lambda: creator_context(
                        None,
                        payload.creator_handle,
                        moment,
                        self._snapshot.platform(moment),
                        reader=reader,
                    ),
                ),
                (
                    "trend_enrichment",
                    "Trend enrichment",
                    lambda: self._trends(con, payload, moment),
                ),
                (
                    "calibration",
                    "Calibration",
                    lambda: self._memo("calibrations", active_calibrations, con),
                ),
            ):
                with_stage = stage(name)
                try:
                    with with_stage:
                        value = read()
                except Exception as exc:
                    run.degrade(label, exc)
                    continue
                finally:
                    run.timings[name] = with_stage.duration_ms or 0.0
                setattr(
                    context,
                    {
                        "rule_loading": "rules",
                        "creator_context": "creator",
                        "trend_enrichment": "trends",
                        "calibration": "calibrations",
                    }[name],
                    value,
                )
            ml_stage = stage("ml_signal")
            try:
                with ml_stage:
                    signal = self._memo("tier_signal", self._tier_signal, con)
                    context.ml = signal.predict(con, payload, moment, reader=reader)
                    context.ml_reason = signal.unavailable_reason
            except Exception as exc:
                run.degrade("ML signal", exc)
            finally:
                run.timings["ml_signal"] = ml_stage.duration_ms or 0.0
        if context.trends is not None and not context.trends.available:
            run.warnings.append(f"Trend data unavailable: {context.trends.context}")
        if context.ml is None and context.ml_reason:
            run.warnings.append(f"ML signal unavailable: {context.ml_reason}")
        return context

    def _memo(self, key: object, compute: Callable[[Any], T], con: Any) -> T:
        """`compute(con)`, kept until the engine's copy of the store is reloaded."""
        if self._derived_version != self._snapshot.loads:
            self._derived = {}
            self._derived_version = self._snapshot.loads
        if key not in self._derived:
            self._derived[key] = compute(con)
        return self._derived[key]  # type: ignore[no-any-return]

    def _trends(self, con: Any, payload: ContentPayload, moment: datetime) -> TrendEnrichment:
        # The snapshot in force: the newest one for any moment after it (the usual case, a
        # draft posted now), else looked up.
        newest = self._memo("newest_trends", lambda c: snapshot_as_of(c, datetime.max), con)
        found = newest if newest is not None and moment >= newest[0] else None
        found = found or snapshot_as_of(con, moment)
        # A snapshot can be fresh for one moment and too old for another: key on both.
        key = None if found is None else (*found, moment - found[0] > DEFAULT_MAX_AGE)
        tables = self._memo(("trends", key), lambda c: load_trend_tables(c, moment), con)
        return score_trends(tables, payload.content_text, payload.hashtags)

    async def _gemini(self, payload: ContentPayload, run: _Run) -> GeminiAnalysis | None:
        reply = await self.providers.run(content_task(payload, self.baseline))
        run.take(reply)
        if reply.value is not None:
            run.content_model = reply.model
        return reply.value

    async def _rules(self, payload: ContentPayload, rules: list[Rule], run: _Run) -> RuleResult:
        semantic: dict[str, float] | None = None
        pending = semantic_rules(rules)
        if pending and payload.content_text.strip():
            reply: LLMReply[RuleEvaluations] = await self.providers.run(
                rules_task(payload.content_text, pending)
            )
            run.take(reply)
            if reply.value is not None:
                semantic = {e.rule_name: e.score for e in reply.value.evaluations}
        return score_rules(payload.content_text, rules, semantic)

    async def _deepseek(
        self,
        payload: ContentPayload,
        gemini: GeminiAnalysis | None,
        rules: RuleResult | None,
        context: StoreContext,
        run: _Run,
    ) -> tuple[DeepSeekReasoning | None, str | None]:
        creator = context.creator or CreatorContext(payload.creator_handle, False)
        reply = await self.providers.run(
            reasoning_task(
                payload,
                gemini=gemini,
                rule_names=list(rules.matched_names) if rules else [],
                trend_context=(
                    context.trends.context if context.trends else "Trend data unavailable."
                ),
                creator_context=creator.describe(),
                baseline=self.baseline,
            )
        )
        run.take(reply)
        return reply.value, (reply.model if reply.value is not None else None)

    # ------------------------------------------------------------------ the result

    def _result(
        self,
        request_id: str,
        payload: ContentPayload,
        run: _Run,
        gemini: GeminiAnalysis | None,
        reasoning: tuple[DeepSeekReasoning | None, str | None] | None,
        rules: RuleResult | None,
        context: StoreContext,
        started: float,
    ) -> PredictionResult:
        behaviour, reasoning_model = reasoning or (None, None)
        gemini_score = (
            round(statistics.fmean(f.score for f in gemini.factors) * 10, 1) if gemini else None
        )
        behavioral_score = (
            round(statistics.fmean(behaviour.component_scores.model_dump().values()) * 10, 1)
            if behaviour
            else None
        )
        trends = context.trends
        scores = {
            "behavioral": behavioral_score,
            "gemini": gemini_score,
            "ml": context.ml.score if context.ml else None,
            "rules": rules.rule_score if rules else None,
            "trends": trends.trend_score if trends and trends.available else None,
        }
        combined = aggregate(
            scores,
            has_video=payload.has_video,
            matched_sounds=len(trends.matched_sounds) if trends else 0,
            matched_rules=len(rules.matched_names) if rules else 0,
            deepseek_confidence=behaviour.confidence if behaviour else None,
            target=context.ml.target if context.ml else "reference_tier",
            calibrations=context.calibrations,
        )
        warnings = [*run.warnings, *(behaviour.warnings if behaviour else []), *combined.warnings]
        cost = sum((c.cost_cents for c in run.calls), Decimal(0))
        return PredictionResult(
            analysis_id=str(uuid.uuid4()),
            request_id=request_id,
            overall_score=combined.overall_score,
            raw_score=combined.raw_score,
            score_target=combined.target,
            resonates_at_views=context.ml.resonates_at_views if context.ml else None,
            signal_profile=combined.signal_profile,
            confidence=combined.confidence,
            confidence_label=combined.confidence_label,  # type: ignore[arg-type]
            is_calibrated=combined.is_calibrated,
            calibration_version=combined.calibration_version,
            behavioral_predictions=(
                behaviour.behavioral_predictions.model_dump() if behaviour else None
            ),
            feature_vector=_feature_vector(payload, gemini, behaviour, rules, trends),
            warnings=scrub_secrets(list(dict.fromkeys(warnings)), self.settings),
            factors=[
                Factor(
                    id=f"factor-{i}",
                    name=f.name,
                    score=f.score,
                    rationale=f.rationale,
                    improvement_tip=f.improvement_tip,
                )
                for i, f in enumerate(gemini.factors if gemini else [], start=1)
            ],
            suggestions=[
                SuggestionOut(
                    id=f"suggestion-{i}", text=s.text, priority=s.priority, category=s.category
                )
                for i, s in enumerate(behaviour.suggestions if behaviour else [], start=1)
            ],
            rule_score=scores["rules"],
            trend_score=trends.trend_score if trends else None,
            gemini_score=gemini_score,
            behavioral_score=behavioral_score,
            ml_score=scores["ml"],
            score_weights=combined.weights,
            signals_available={name: value is not None for name, value in scores.items()},
            rules_evaluated=rules.rules_evaluated if rules else 0,
            rule_contributions=[c.as_dict() for c in rules.contributions] if rules else [],
            matched_sounds=trends.matched_sounds if trends else [],
            creator=(context.creator.as_dict() if context.creator else {"found": False}),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            stage_timings=dict(run.timings),
            cost_cents=cost,
            engine_version=ENGINE_VERSION,
            gemini_model=run.content_model if gemini else None,
            deepseek_model=reasoning_model,
            ml_model_id=context.ml.model_id if context.ml else None,
            tiers=context.ml.as_dict() if context.ml else None,
            input_mode=payload.input_mode,
            has_video=payload.has_video,
        )

    async def _store(
        self,
        result: PredictionResult,
        payload: ContentPayload,
        run: _Run,
        user_id: str | None,
        is_backtest: bool,
        source_video_id: str | None,
    ) -> None:
        calls = [
            LLMCallRow(
                id=str(uuid.uuid4()),
                provider=c.provider,
                model=c.model,
                purpose=c.purpose,
                input_tokens=c.usage.input_tokens,
                cached_tokens=c.usage.cached_tokens,
                output_tokens=c.usage.output_tokens,
                thinking_tokens=c.usage.thinking_tokens,
                cost_cents=c.known_cost_cents,
                latency_ms=c.latency_ms,
                status=c.status,
                error=c.error,
            )
            for c in run.calls
        ]

        row = result.model_dump(mode="python")
        write = analysis_rows(
            row,
            content_text=payload.content_text,
            content_type=payload.content_type,
            niche=payload.niche,
            creator_handle=payload.creator_handle,
            video_url=payload.video_url,
            hashtags=payload.hashtags,
            planned_post_time=payload.planned_post_time,
            user_id=user_id,
            is_backtest=is_backtest,
            source_video_id=source_video_id,
        )
        calls_rows = llm_call_rows(
            calls, request_id=result.request_id, analysis_id=result.analysis_id
        )
        write = dataclasses.replace(write, then=(calls_rows,))

        # Queued, not awaited: the writer commits it within milliseconds, batched with others,
        # off the request's path. A full queue makes this wait (back-pressure).
        committed = await asyncio.to_thread(self._writer.submit, write)
        analysis_id = result.analysis_id
        self._pending[analysis_id] = committed

        def settled(done: Future[None]) -> None:
            error = done.exception()
            if error is not None:
                # Kept for `stored()`, which may ask after the write has already failed.
                with self._failed_lock:
                    self._failed[analysis_id] = error
                    while len(self._failed) > MAX_FAILED_KEPT:
                        del self._failed[next(iter(self._failed))]
                log.error("analysis not stored", analysis_id=analysis_id, error=str(error))
            self._pending.pop(analysis_id, None)

        committed.add_done_callback(settled)

    async def stored(self, analysis_id: str, timeout_s: float | None = None) -> bool:
        """Wait until a result this engine queued is committed: True once it is (or if it was
        never queued here), False when `timeout_s` passes first (it stays queued and is stored
        later). Raises the write's error if it failed."""
        pending = self._pending.get(analysis_id)
        if pending is None:
            with self._failed_lock:
                error = self._failed.pop(analysis_id, None)
            if error is not None:
                raise error
            return True
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)), timeout_s)
        except TimeoutError:
            return False
        return True


def _feature_vector(
    payload: ContentPayload,
    gemini: GeminiAnalysis | None,
    behaviour: DeepSeekReasoning | None,
    rules: RuleResult | None,
    trends: TrendEnrichment | None,
) -> dict[str, Any]:
    """The signals behind the score, by name (None where a signal was unavailable)."""
    vector: dict[str, Any] = {
        "rule_score": rules.rule_score if rules else None,
        "trend_score": trends.trend_score if trends else None,
        "hashtag_relevance": trends.hashtag_relevance if trends else None,
        "matched_sound_velocity": max(
            (float(s["velocity_score"]) for s in trends.matched_sounds),
            default=None,  # type: ignore[arg-type]
        )
        if trends
        else None,
        "hashtag_count": len(payload.hashtags),
        "caption_length": len(payload.content_text),
        "duration_seconds": payload.duration_hint,
        "has_video": payload.has_video,
    }
    for factor in gemini.factors if gemini else []:
        vector[f"gemini_{factor.name.lower().replace(' ', '_').replace('-', '_')}"] = factor.score
    if behaviour:
        vector.update(
            {f"deepseek_{k}": v for k, v in behaviour.component_scores.model_dump().items()}
        )
    return vector
