"""The AI SDK's UI message stream (protocol v1): what `useChat`'s default
transport and assistant-ui read. Each SSE event is one JSON chunk on a
`data:` line: `start` (the message id: the answer's turn id), `start-step`,
a part at a time (`text-start` / `text-delta` / `text-end`, the same for
reasoning, a tool call as `tool-input-available`, its result as
`tool-output-available` or `tool-output-error`), `finish-step`, `finish`
with chatstream's figures as message metadata, then `data: [DONE]`.

The SDK's parts are opened and closed; chatstream's events are not, so the
wire keeps which part is open and closes it when another kind of output
comes. A `step` event (the tool loop's next model call) is a step boundary.
What the protocol has no part for goes as a data part: a refusal
(`data-refusal`) and a tool call waiting for a person's approval
(`data-approval`, decided through chatstream's own API).
"""

from typing import Any

import orjson

from ..stream.events import (
    APPROVAL,
    DELTA,
    DONE,
    ERROR,
    HEARTBEAT,
    REASONING,
    REFUSAL,
    START,
    STEP,
    TOOL_CALL,
    TOOL_RESULT,
    Event,
    FinishReason,
)
from .events import SSE_CONTENT_TYPE, SSE_HEARTBEAT, sse_data

HEADER = ("x-vercel-ai-ui-message-stream", "v1")
# A comment: the SDK's parser skips it, proxies see a first byte at once.
OPENING = b": stream open\n\n"
END = b"data: [DONE]\n\n"

# chatstream's endings in the SDK's vocabulary; the ones missing from it were
# stopped, and end with `abort` as the SDK's own server does when stopped.
FINISH_REASONS = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.CONTENT_FILTER: "content-filter",
    FinishReason.TOOL_CALLS: "tool-calls",
    FinishReason.APPROVAL_TIMEOUT: "other",
    FinishReason.BUDGET_EXCEEDED: "other",
    FinishReason.GUARDRAIL_STOPPED: "content-filter",
}
_PART_EVENTS = {DELTA: "text", REASONING: "reasoning"}


class UIMessageWire:
    """One answer's chunks: which text or reasoning part is open, and how
    many parts have been opened (each part's id)."""

    content_type = SSE_CONTENT_TYPE
    opening = OPENING

    def __init__(self, turn_id: object) -> None:
        self.turn_id = str(turn_id)
        self.open: tuple[str, str] | None = None  # (kind, id) of the open part
        self.parts = 0

    def encode(self, event: Event) -> bytes:
        kind, data, _ = event
        if kind in _PART_EVENTS:  # first: nearly every event is a delta
            return self._delta(_PART_EVENTS[kind], data)
        if kind == HEARTBEAT:
            return SSE_HEARTBEAT
        if kind == START:
            return _chunks({"type": "start", "messageId": data["turn_id"]}, {"type": "start-step"})
        if kind in (DONE, ERROR):
            return self._ending(kind, data)
        return self._closed() + self._whole(kind, data)

    def _delta(self, part: str, text: str) -> bytes:
        opening = b""
        if self.open is None or self.open[0] != part:
            opening = self._closed()
            self.parts += 1
            self.open = (part, f"{part[0]}{self.parts}")
            opening += _chunks({"type": f"{part}-start", "id": self.open[1]})
        return opening + _chunks({"type": f"{part}-delta", "id": self.open[1], "delta": text})

    def _closed(self) -> bytes:
        """The open part's end, if one is open."""
        if self.open is None:
            return b""
        part, part_id = self.open
        self.open = None
        return _chunks({"type": f"{part}-end", "id": part_id})

    def _whole(self, kind: str, text: str) -> bytes:
        """An output event that is a part of its own, or a step boundary."""
        if kind == STEP:
            return _chunks({"type": "finish-step"}, {"type": "start-step"})
        if kind == REFUSAL:
            return _chunks({"type": "data-refusal", "data": {"text": text}})
        fields = orjson.loads(text)
        if kind == TOOL_CALL:
            call = {"toolCallId": fields["id"], "toolName": fields["name"]}
            return _chunks({"type": "tool-input-available", **call, "input": json_or_text(fields["arguments"])})
        if kind == TOOL_RESULT:
            if fields.get("error") is not None:
                return _chunks({"type": "tool-output-error", "toolCallId": fields["id"], "errorText": fields["error"]})
            return _chunks(
                {"type": "tool-output-available", "toolCallId": fields["id"], "output": json_or_text(fields["output"])}
            )
        assert kind == APPROVAL
        return _chunks({"type": "data-approval", "id": fields["id"], "data": {**fields, "turn_id": self.turn_id}})

    def _ending(self, kind: str, data: dict) -> bytes:
        """The last part closed, the step finished, then `finish` (with
        chatstream's figures), `error` or `abort`, and `[DONE]`."""
        ending = self._closed() + _chunks({"type": "finish-step"})
        if kind == ERROR:
            return ending + _chunks({"type": "error", "errorText": data["message"]}) + END
        metadata = finish_metadata(self.turn_id, data)
        reason = FINISH_REASONS.get(data["finish_reason"])
        if reason is None:  # stopped: by a person, a client that left or stalled
            return (
                ending
                + _chunks(
                    {"type": "message-metadata", "messageMetadata": metadata},
                    {"type": "abort", "reason": data["finish_reason"]},
                )
                + END
            )
        return ending + _chunks({"type": "finish", "finishReason": reason, "messageMetadata": metadata}) + END


def finish_metadata(turn_id: str, done: dict) -> dict[str, Any]:
    """The `done` event's figures, named as JavaScript names them: the
    answer's message metadata."""
    usage = done["usage"]
    metadata = {
        "turnId": turn_id,
        "finishReason": done["finish_reason"],
        "usage": {
            "inputTokens": usage["tokens_in"],
            "outputTokens": usage["tokens_out"],
            "cachedInputTokens": usage["tokens_cached"],
            "reasoningTokens": usage["tokens_reasoning"],
            "estimated": usage["estimated"],
        },
        "cost": done["cost"],
        "durationMs": done["duration_ms"],
    }
    if "output_valid" in done:
        metadata["outputValid"] = done["output_valid"]
        if "output" in done:
            metadata["output"] = done["output"]
    return metadata


def json_or_text(text: str | None) -> Any:
    """A call's arguments or a tool's output as the JSON it holds, else as
    the text it is (a model may send arguments that do not parse)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _chunks(*chunks: dict) -> bytes:
    return b"".join(map(sse_data, chunks))
