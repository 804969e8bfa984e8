"""The Responses door's wire: an answer's events as OpenAI's Responses
stream events (`response.created` … `response.completed`), and the same
state, fed a saved answer's events, as the one `response` object a client
that waits for the whole answer (or asks for it later) gets.

Output items follow the answer's output in order: reasoning as a
`reasoning` item with `reasoning_text` content (chatstream's reasoning is
the model's own, not a summary: OpenAI's open-weight models stream it so),
text and refusals as parts of a `message` item, each tool call as a
`function_call` item. Every event has its `type` and a `sequence_number`;
added and done events carry a copy of their item as it was then, so the
SDK's accumulator, which appends deltas to the added item, adds each once.

chatstream's endings: stop and tool_calls complete the response; a length
or content filter stop, a cancel, a client gone leave it `incomplete`; an
error fails it. The `chatstream_finish_reason` field says which.
"""

import copy
import time
import uuid
from typing import Any

import orjson

from ..stream.events import DELTA, DONE, ERROR, HEARTBEAT, REASONING, REFUSAL, STEP, TOOL_CALL, Event, saved_events
from ..stream.output import saved_output
from .events import SSE_CONTENT_TYPE, SSE_HEARTBEAT
from .openai_chunks import OPENING, counted_here, openai_usage

RESPONSE_PREFIX = "resp_"
COMPLETE_ENDINGS = frozenset({"stop", "tool_calls"})
INCOMPLETE_REASONS = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
    "guardrail_stopped": "content_filter",
}
FINISH_FIELD = "chatstream_finish_reason"
# What a response says of its request when the request is not at hand (a saved one asked for later).
DEFAULT_ECHO: dict[str, Any] = {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True, "metadata": {}}

# How each kind of text is held: its item's type, its part, and the events' names.
_TEXT_KINDS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    DELTA: ("message", {"type": "output_text", "text": "", "annotations": [], "logprobs": []}, "output_text", "text"),
    REFUSAL: ("message", {"type": "refusal", "refusal": ""}, "refusal", "refusal"),
    REASONING: ("reasoning", {"type": "reasoning_text", "text": ""}, "reasoning_text", "text"),
}
_ITEM_ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


def response_id(turn_id: object) -> str:
    """A response's id: its answer's turn id, so the door can find the turn again."""
    return f"{RESPONSE_PREFIX}{uuid.UUID(str(turn_id)).hex}"


class ResponseState:
    """One response as the answer's events go by: its output items, the
    item and part open, and the number of the next event."""

    def __init__(self, turn_id: object, model: str, created_at: float, echo: dict[str, Any]) -> None:
        self.turn_hex = uuid.UUID(str(turn_id)).hex
        self.response: dict[str, Any] = {
            **DEFAULT_ECHO,
            **echo,
            "id": response_id(turn_id),
            "object": "response",
            "created_at": int(created_at),
            "status": "in_progress",
            "model": model,
            "output": [],
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }
        self.sequence = 0
        self.item: dict[str, Any] | None = None  # the message or reasoning item open, if one is
        self.part_kind = ""  # the kind of its open part
        self.text: list[str] = []  # and that part's text so far
        self.delta_fields: dict[str, Any] = {}  # what each of its deltas says besides its text

    def opening(self) -> list[dict[str, Any]]:
        return [self._event(name, response=copy.deepcopy(self.response)) for name in ("created", "in_progress")]

    def take(self, event: Event) -> list[dict[str, Any]]:
        """The Responses events one answer event makes (none for what they
        have no place for: the start, the server's tool loop)."""
        kind, data, _ = event
        if kind in _TEXT_KINDS:
            return self._text(kind, data)
        if kind == TOOL_CALL:
            return [*self._close(), *self._call(orjson.loads(data))]
        if kind == DONE:
            complete = data["finish_reason"] in COMPLETE_ENDINGS
            return [*self._close("completed" if complete else "incomplete"), self._ending(data)]
        if kind == ERROR:
            return [*self._close("incomplete"), self._failed(data)]
        return []

    # --- items ---------------------------------------------------------------------------

    def _text(self, kind: str, delta: str) -> list[dict[str, Any]]:
        events = [] if self.part_kind == kind else self._open_part(kind)
        self.text.append(delta)
        self.sequence += 1  # the hot path: one event built directly
        return [*events, {**self.delta_fields, "sequence_number": self.sequence - 1, "delta": delta}]

    def _open_part(self, kind: str) -> list[dict[str, Any]]:
        """The item (a new one if the open one is of another type) and the part `kind`'s text goes in."""
        item_type, part, event_name, _ = _TEXT_KINDS[kind]
        events = []
        if self.item is None or self.item["type"] != item_type:
            events = [*self._close(), self._added({"type": item_type, "status": "in_progress"})]
        events += self._close_part()
        self.part_kind = kind
        self.item["content"].append(copy.deepcopy(part))  # type: ignore[index]
        events.append(self._event("content_part.added", **self._place(), part=copy.deepcopy(part)))
        extra: dict[str, Any] = {"logprobs": []} if kind == DELTA else {}
        self.delta_fields = {"type": f"response.{event_name}.delta", **self._place(), **extra}
        return events

    def _added(self, item: dict[str, Any]) -> dict[str, Any]:
        index = len(self.response["output"])
        item = {"id": f"{_ITEM_ID_PREFIX[item['type']]}_{self.turn_hex}_{index}", **item}
        if item["type"] == "message":
            item.update(role="assistant", content=[])
        elif item["type"] == "reasoning":
            item.update(summary=[], content=[])
        self.response["output"].append(item)
        self.item = item if item["type"] != "function_call" else None
        return self._event("output_item.added", output_index=index, item=copy.deepcopy(item))

    def _close_part(self) -> list[dict[str, Any]]:
        if not self.part_kind:
            return []
        _, _, event_name, field = _TEXT_KINDS[self.part_kind]
        text, part = "".join(self.text), self.item["content"][-1]  # type: ignore[index]
        part[field] = text
        extra: dict[str, Any] = {"logprobs": []} if self.part_kind == DELTA else {}
        self.part_kind, self.text = "", []
        return [
            self._event(f"{event_name}.done", **self._place(), **{field: text}, **extra),
            self._event("content_part.done", **self._place(), part=dict(part)),
        ]

    def _close(self, status: str = "completed") -> list[dict[str, Any]]:
        """The open item's part and the item itself done."""
        if self.item is None:
            return []
        events = self._close_part()
        item, self.item = self.item, None
        item["status"] = status
        events.append(self._done(item, len(self.response["output"]) - 1))  # the open item is the last
        return events

    def _call(self, call: dict[str, str]) -> list[dict[str, Any]]:
        fields = {"call_id": call["id"], "name": call["name"], "arguments": ""}
        added = self._added({"type": "function_call", **fields, "status": "in_progress"})
        item = self.response["output"][-1]
        place = {"item_id": item["id"], "output_index": added["output_index"]}
        item.update(arguments=call["arguments"], status="completed")
        return [
            added,
            self._event("function_call_arguments.delta", **place, delta=call["arguments"]),
            self._event("function_call_arguments.done", **place, name=call["name"], arguments=call["arguments"]),
            self._done(item, added["output_index"]),
        ]

    def _done(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        return self._event("output_item.done", output_index=index, item=copy.deepcopy(item))

    def _place(self) -> dict[str, Any]:
        assert self.item is not None
        return {
            "item_id": self.item["id"],
            "output_index": len(self.response["output"]) - 1,
            "content_index": len(self.item["content"]) - 1,
        }

    # --- endings -------------------------------------------------------------------------

    def _ending(self, data: dict[str, Any]) -> dict[str, Any]:
        reason = data["finish_reason"]
        usage = data["usage"]
        counts = (usage["tokens_in"], usage["tokens_out"], usage["tokens_cached"], usage["tokens_reasoning"])
        estimated = counted_here(usage.get("estimated", False), usage.get("source"))
        self.response.update(usage=response_usage(*counts, estimated))
        self.response[FINISH_FIELD] = reason
        if reason in COMPLETE_ENDINGS:
            self.response.update(status="completed", completed_at=int(time.time()))
            return self._event("completed", response=self.response)
        self.response.update(status="incomplete", incomplete_details={"reason": INCOMPLETE_REASONS.get(reason)})
        return self._event("incomplete", response=self.response)

    def _failed(self, data: dict[str, Any]) -> dict[str, Any]:
        # OpenAI's codes are a closed list: chatstream's own goes as the error's `type`.
        code = "rate_limit_exceeded" if data["code"] == "upstream_rate_limited" else "server_error"
        self.response.update(status="failed", error={"code": code, "message": data["message"], "type": data["code"]})
        self.response[FINISH_FIELD] = "error"
        return self._event("failed", response=self.response)

    def _event(self, name: str, /, **fields: Any) -> dict[str, Any]:
        event = {"type": f"response.{name}", "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event


def response_usage(
    tokens_in: int | None, tokens_out: int | None, cached: int | None, reasoning: int | None, estimated: bool
) -> dict[str, Any]:
    """The Responses API's usage object: the chat door's counts
    (openai_chunks.openai_usage, estimated ones marked the same way) under
    the Responses API's names."""
    chat = openai_usage(tokens_in, tokens_out, cached, reasoning, estimated)
    usage = {
        "input_tokens": chat.pop("prompt_tokens"),
        "input_tokens_details": {**chat.pop("prompt_tokens_details"), "cache_write_tokens": 0},  # none known
        "output_tokens": chat.pop("completion_tokens"),
        "output_tokens_details": chat.pop("completion_tokens_details"),
    }
    return {**usage, **chat}  # total_tokens, and the estimated mark


class ResponseWire:
    """One response's events on the wire: `response.created` and
    `response.in_progress` at once, then what each answer event makes."""

    content_type = SSE_CONTENT_TYPE

    def __init__(self, state: ResponseState) -> None:
        self.state = state
        self.opening = OPENING + b"".join(map(_sse, state.opening()))

    def encode(self, event: Event) -> bytes:
        if event[0] == HEARTBEAT:
            return SSE_HEARTBEAT
        return b"".join(map(_sse, self.state.take(event)))


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (event["type"].encode(), orjson.dumps(event))


# --- a saved answer ---------------------------------------------------------------------


def own_output_start(turn: Any) -> int:
    """Where a saved answer's own output begins: after its last step. A door
    answer has steps only when it carries on from tool calls the client ran
    (answering.Version.ANSWERED): what came before is earlier responses'."""
    return max((end for kind, _, end in saved_output(turn).since(0) if kind == STEP), default=0)


def saved_response(turn: Any, model: str, echo: dict[str, Any]) -> dict[str, Any]:
    """A saved answer as one `response` object, built by the wire's own state."""
    state = ResponseState(turn.pk, model, turn.created_at.timestamp(), echo)
    for event in saved_events(turn, own_output_start(turn)):
        state.take(event)
    return state.response
