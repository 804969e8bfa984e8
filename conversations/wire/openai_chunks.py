"""The OpenAI door's wire: an answer's events as OpenAI's
`chat.completion.chunk`s, with reasoning as `delta.reasoning_content` (as
DeepSeek and vLLM send it), the usage chunk when the client asked for it,
then `data: [DONE]`. The door never runs server tools (its answers have no
tool loop), so `tool_result` and `step` events cannot reach it; should one,
it is skipped: OpenAI's chunks have no place for it."""

import time

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
)
from .events import SSE_CONTENT_TYPE, SSE_HEARTBEAT, sse_data

# chatstream's endings that OpenAI's vocabulary lacks: the answer stopped early.
FINISH_REASONS = {
    "cancelled": "stop",
    "client_disconnected": "stop",
    "client_stalled": "stop",
    "approval_timeout": "stop",
    "budget_exceeded": "stop",
    "guardrail_stopped": "content_filter",  # a guardrail's on_output: as a provider's own filter would end it
}

ESTIMATED = "estimated"  # a usage_source: counted here, the server sent none
ESTIMATED_FIELD = "chatstream_estimated"

# A comment only, unlike chatstream's own SSE opening: the official SDKs turn
# a `retry:` field alone into an event with empty data, and fail parsing it.
OPENING = b": stream open\n\n"


class ChunkWire:
    """One response's chunks: they share an id and a creation time, and
    count the tool calls sent (each one's index)."""

    content_type = SSE_CONTENT_TYPE
    opening = OPENING

    def __init__(self, turn_id: object, model: str, include_usage: bool) -> None:
        self.head = {"id": f"chatcmpl-{turn_id}", "object": "chat.completion.chunk", "created": int(time.time())}
        self.model = model
        self.include_usage = include_usage
        self.calls = 0

    def encode(self, event: Event) -> bytes:
        kind, data, event_id = event
        if kind == DELTA:
            return self._chunk({"content": data}, event_id)
        if kind == HEARTBEAT:
            return SSE_HEARTBEAT
        if kind == START:
            return self._chunk({"role": "assistant", "content": ""}, event_id)
        if kind == REASONING:
            return self._chunk({"reasoning_content": data}, event_id)
        if kind == REFUSAL:
            return self._chunk({"refusal": data}, event_id)
        if kind == TOOL_CALL:
            return self._tool_call(data, event_id)
        if kind in (TOOL_RESULT, STEP, APPROVAL):  # the server's tool loop: never on this door
            return b""
        if kind == ERROR:  # a chunk that carries it: the SDKs raise on one
            return sse_data({"error": {"message": data["message"], "type": "upstream_error", "code": data["code"]}})
        assert kind == DONE
        return self._ending(data)

    def _tool_call(self, data: str, event_id: int) -> bytes:
        call = orjson.loads(data)
        fragment = {
            "index": self.calls,
            "id": call["id"],
            "type": "function",
            "function": {k: call[k] for k in ("name", "arguments")},
        }
        self.calls += 1
        return self._chunk({"tool_calls": [fragment]}, event_id)

    def _ending(self, data: dict) -> bytes:
        """The finish chunk, the usage chunk if asked, `[DONE]`."""
        reason = FINISH_REASONS.get(data["finish_reason"], data["finish_reason"])
        chunks = [sse_data({**self.head, "model": self.model, "choices": [_choice({}, reason)]})]
        if self.include_usage:
            usage = data["usage"]
            counts = (usage["tokens_in"], usage["tokens_out"], usage["tokens_cached"], usage["tokens_reasoning"])
            estimated = counted_here(usage.get("estimated", False), usage.get("source"))
            chunks.append(
                sse_data({**self.head, "model": self.model, "choices": [], "usage": openai_usage(*counts, estimated)})
            )
        return b"".join(chunks) + b"data: [DONE]\n\n"

    def _chunk(self, delta: dict, event_id: int) -> bytes:
        # `id:` as chatstream's own events have it: a place to resume from.
        payload = orjson.dumps({**self.head, "model": self.model, "choices": [_choice(delta, None)]})
        return b"id: %d\ndata: %b\n\n" % (event_id, payload)


def counted_here(tokens_estimated: bool, usage_source: str | None) -> bool:
    """Whether any count is chatstream's own: the server sent no usage, or
    left out a count (its usage said `reported`, the turn `tokens_estimated`)."""
    return usage_source == ESTIMATED or (tokens_estimated and usage_source != "none")


def openai_usage(
    tokens_in: int | None, tokens_out: int | None, cached: int | None, reasoning: int | None, estimated: bool
) -> dict:
    """OpenAI's usage object. Counts chatstream made itself (the server sent
    none: `usage_source` "estimated") say so in a field of ours, which
    OpenAI's schema lacks and the SDKs keep as an extra."""
    prompt, completion = tokens_in or 0, tokens_out or 0
    usage: dict = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached or 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning or 0},
    }
    if estimated:
        usage[ESTIMATED_FIELD] = True
    return usage


def _choice(delta: dict, finish_reason: str | None) -> dict:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
