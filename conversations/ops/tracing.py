"""OpenTelemetry: one span per answer, after the GenAI semantic conventions
(a `chat <model>` client span with gen_ai.* attributes, an event at the first
token), carrying the trace id chatstream writes in its logs, rows and
events as `chatstream.trace_id`.

Only OpenTelemetry's API is used here: until a project installs an SDK
tracer provider (chatstream's own does when OTEL_EXPORTER_OTLP_ENDPOINT is
set: chatstream/tracing.py) every call is a no-op and no span is made.

A project that installs one has imported OpenTelemetry to do so (or
`opentelemetry-instrument` has), so until something has, this module does
not import it either: a process without tracing keeps the API's ~5 MiB.
"""

import sys
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

_tracer: "Tracer | None" = None
_spans: "weakref.WeakKeyDictionary[Any, Span]" = weakref.WeakKeyDictionary()


def tracer() -> "Tracer | None":
    """The app's tracer, or None while nothing has imported OpenTelemetry."""
    global _tracer
    if _tracer is None and "opentelemetry.trace" in sys.modules:
        from opentelemetry import trace

        _tracer = trace.get_tracer("conversations")
    return _tracer


def answer_started(relay: Any) -> None:
    app_tracer = tracer()
    if app_tracer is None:
        return
    from opentelemetry.trace import SpanKind

    model = relay.provider.model
    span = app_tracer.start_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": relay.provider.name,
            "gen_ai.request.model": model,
            "gen_ai.conversation.id": str(relay.prepared.conversation_id),
            "chatstream.trace_id": relay.trace_id,
            "chatstream.turn_id": str(relay.turn_id),
            "chatstream.model_name": relay.prepared.model_name,
            "chatstream.prompt_turns": relay.prepared.prompt_turns,
        },
    )
    if span.is_recording():
        _spans[relay] = span


def first_output(relay: Any, ttft_s: float) -> None:
    span = _spans.get(relay)
    if span is not None:
        span.add_event("gen_ai.first_token", {"gen_ai.response.time_to_first_chunk": ttft_s})


def cancelled(relay: Any, reason: str) -> None:
    span = _spans.get(relay)
    if span is not None:
        span.add_event("chatstream.cancel", {"chatstream.cancel.reason": reason})


def answer_ended(relay: Any, answer: Any) -> None:
    span = _spans.pop(relay, None)
    if span is None:
        return
    attributes = {
        "gen_ai.response.model": answer.model,
        "gen_ai.response.finish_reasons": [answer.finish_reason],
        "gen_ai.usage.input_tokens": answer.tokens_in,
        "gen_ai.usage.output_tokens": answer.tokens_out,
        "gen_ai.usage.cache_read.input_tokens": answer.tokens_cached,
        "gen_ai.usage.reasoning.output_tokens": answer.tokens_reasoning,
        "chatstream.usage_source": answer.usage_source,
        "chatstream.ttft_ms": answer.ttft_ms,
        "chatstream.cost": None if answer.cost is None else str(answer.cost),
    }
    span.set_attributes({name: value for name, value in attributes.items() if value is not None})
    if answer.error_code:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", answer.error_code)
        span.set_status(Status(StatusCode.ERROR, answer.error_detail[:500]))
    span.end()
