"""The events a reader of an answer gets, and how the first and the last are
built. Every part that writes or reads an answer's events (the relay, a
reader in another process, a saved turn replayed) takes them from here.

An event is (kind, data, id): the id is the answer's length in characters
after the event (output.py: text, reasoning, refusal, tool calls, tool
results and steps counted together), so it names a place in the saved
output. The output events carry their text as data: a `tool_call`'s,
`approval_request`'s, `tool_result`'s and `step`'s text is its JSON object.
"""

from typing import Any

import orjson
from django.db.models import TextChoices

from ..providers.kinds import APPROVAL, REASONING, REFUSAL, STEP, TOOL_CALL, TOOL_RESULT
from ..providers.kinds import TEXT as DELTA
from .output import saved_output

START, HEARTBEAT, DONE, ERROR = "start", "heartbeat", "done", "error"
# The ones that move the id on.
OUTPUT_EVENTS = frozenset({DELTA, REASONING, REFUSAL, TOOL_CALL, TOOL_RESULT, STEP, APPROVAL})
Event = tuple[str, Any, int]

__all__ = [
    "APPROVAL",
    "DELTA",
    "DONE",
    "ERROR",
    "HEARTBEAT",
    "OUTPUT_EVENTS",
    "REASONING",
    "REFUSAL",
    "START",
    "STEP",
    "TOOL_CALL",
    "TOOL_RESULT",
]


class FinishReason(TextChoices):
    STOP = "stop"
    TOOL_CALLS = "tool_calls"  # the model asks for tools to be run
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    CANCELLED = "cancelled"
    CLIENT_DISCONNECTED = "client_disconnected"
    CLIENT_STALLED = "client_stalled"  # connected, but took no output for CHATSTREAM_READER_STALL_SECONDS
    ERROR = "error"
    APPROVAL_TIMEOUT = "approval_timeout"  # a tool's approval did not come within CHATSTREAM_APPROVAL_TIMEOUT_SECONDS
    BUDGET_EXCEEDED = "budget_exceeded"  # a budget was reached between two model calls of a tool loop
    GUARDRAIL_STOPPED = "guardrail_stopped"  # a guardrail's on_output stopped it (guardrails/output.py)


def start_event(*, turn_id: object, conversation_id: object, trace_id: str, model: str) -> Event:
    """The first event of an answer read from its beginning."""
    data = {"turn_id": str(turn_id), "conversation_id": str(conversation_id), "trace_id": trace_id, "model": model}
    return START, data, 0


def final_event(answer: Any, length: int) -> Event:
    """The `done` or `error` event for a saved answer: a stream.answer.Answer,
    or a Turn read back from the database (they share these fields)."""
    if answer.finish_reason == FinishReason.ERROR:
        data = {"code": answer.error_code, "message": answer.error_detail, "finish_reason": FinishReason.ERROR}
        return ERROR, data, length
    usage = {
        "tokens_in": answer.tokens_in,
        "tokens_out": answer.tokens_out,
        "tokens_cached": answer.tokens_cached,
        "tokens_reasoning": answer.tokens_reasoning,
        "estimated": answer.tokens_estimated,
        "source": answer.usage_source,
    }
    data = {
        "finish_reason": answer.finish_reason,
        "usage": usage,
        "cost": None if answer.cost is None else str(answer.cost),
        "ttft_ms": answer.ttft_ms,
        "ttft_answer_ms": answer.ttft_answer_ms,
        "duration_ms": answer.duration_ms,
    }
    if answer.output_valid is not None:  # it had a response_format (instructions.py)
        data["output_valid"] = answer.output_valid
        if answer.output_valid:
            data["output"] = orjson.loads(answer.content)
    return DONE, data, length


def saved_events(turn: Any, after: int) -> list[Event]:
    """A saved answer's events after character `after`: the start (for a
    reader from the beginning), the rest of its output, then its final event."""
    events = [start_event(**_start_fields(turn))] if not after else []
    return events + saved_rest(turn, after)


def saved_rest(turn: Any, after: int) -> list[Event]:
    """What a reader that has character `after` of a saved answer still
    needs: the rest of its output, in the order it streamed, then its final
    event."""
    output = saved_output(turn)
    return [*output.since(after), final_event(turn, output.length)]


def _start_fields(turn: Any) -> dict[str, Any]:
    return {"turn_id": turn.pk, "conversation_id": turn.conversation_id, "trace_id": turn.trace_id, "model": turn.model}
