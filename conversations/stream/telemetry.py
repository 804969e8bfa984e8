"""What a stream tells the operators: one structured log line per event that
matters (start, first token, a failed model call, cancel, end), each with the
trace id, the Prometheus metrics (metrics.py) and, where a project has set
up OpenTelemetry, a span per answer (tracing.py).

Log records carry their fields as `extra`: LOG_FORMAT=json (the default
unless DEBUG) writes each line as one JSON object, `plain` as
`message key=value …`.
"""

import logging
import uuid
from typing import Protocol

from ..exceptions import UpstreamError
from ..ops import metrics, tracing
from ..providers import Completion, Provider
from .answer import Answer, PreparedTurn

logger = logging.getLogger("conversations.stream")


class Stream(Protocol):
    """What the telemetry reads of an answer being generated (an AnswerRelay)."""

    prepared: PreparedTurn
    provider: Provider
    completion: Completion
    trace_id: str

    @property
    def turn_id(self) -> uuid.UUID: ...


def _ids(relay: Stream) -> dict:
    return {"trace_id": relay.trace_id, "turn_id": str(relay.turn_id)}


def stream_started(relay: Stream) -> None:
    metrics.OPEN_STREAMS.inc()
    tracing.answer_started(relay)
    prepared = relay.prepared
    logger.info(
        "stream.start",
        extra={
            **_ids(relay),
            "event": "start",
            "conversation_id": str(prepared.conversation_id),
            "user_id": prepared.owner_id,
            "model": relay.provider.model,
            "provider": relay.provider.name,
            "prompt_turns": prepared.prompt_turns,
            "prompt_tokens": prepared.prompt_tokens,
        },
    )


def first_token(relay: Stream, ttft_s: float) -> None:
    metrics.TTFT.labels(relay.completion.model).observe(ttft_s)
    tracing.first_output(relay, ttft_s)
    logger.info(
        "stream.first_token",
        extra={**_ids(relay), "event": "first_token", "model": relay.completion.model, "ttft_ms": round(ttft_s * 1000)},
    )


def model_call_failed(relay: Stream, model: str, exc: UpstreamError) -> None:
    metrics.UPSTREAM_ERRORS.labels(exc.code).inc()
    logger.warning(
        "stream.model_call_failed",
        extra={
            **_ids(relay),
            "event": "model_call_failed",
            "model": model,
            "code": exc.code,
            "error": str(exc),
            "detail": exc.detail,  # what the client is not shown: the library's exception, the body
        },
    )


def stream_cancelled(relay: Stream, reason: str) -> None:
    tracing.cancelled(relay, reason)
    logger.info("stream.cancel", extra={**_ids(relay), "event": "cancel", "reason": reason})


def stream_ended(relay: Stream, answer: Answer, tpot_s: float | None, saved: bool) -> None:
    metrics.OPEN_STREAMS.dec()
    metrics.FINISHED.labels(answer.finish_reason).inc()
    metrics.DURATION.labels(answer.model).observe(answer.duration_ms / 1000)
    if tpot_s is not None:
        metrics.TPOT.labels(answer.model).observe(tpot_s)
    if answer.ttft_answer_ms is not None:
        metrics.TTFT_ANSWER.labels(answer.model).observe(answer.ttft_answer_ms / 1000)
    metrics.TOKENS.labels("in").inc(answer.tokens_in or 0)
    metrics.TOKENS.labels("out").inc(answer.tokens_out or 0)
    metrics.TOKENS.labels("cached").inc(answer.tokens_cached or 0)
    metrics.TOKENS.labels("reasoning").inc(answer.tokens_reasoning or 0)
    if answer.cost:
        metrics.COST.labels(answer.model).inc(float(answer.cost))
    fields = {
        **_ids(relay),
        "event": "end",
        "saved": saved,
        "finish_reason": answer.finish_reason,
        "error_code": answer.error_code or None,
        "model": answer.model,
        "ttft_ms": answer.ttft_ms,
        "ttft_answer_ms": answer.ttft_answer_ms,
        "tpot_ms": round(tpot_s * 1000, 2) if tpot_s is not None else None,
        "duration_ms": answer.duration_ms,
        "tokens_in": answer.tokens_in,
        "tokens_out": answer.tokens_out,
        "tokens_cached": answer.tokens_cached,
        "tokens_reasoning": answer.tokens_reasoning,
        "usage_source": answer.usage_source,
        "cost": None if answer.cost is None else str(answer.cost),
        "reasoning_chars": len(answer.reasoning),
        "tool_calls": len(answer.tool_calls),
        "refused": bool(answer.refusal),
        "attempts": len(answer.attempts),
    }
    if answer.finish_reason == "error":
        logger.warning("stream.error", extra={**fields, "event": "error", "error": answer.error_detail})
    logger.info("stream.end", extra=fields)
    tracing.answer_ended(relay, answer)
