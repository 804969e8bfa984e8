"""chatstream's own wire: the relay's events as Server-Sent Events or NDJSON.

Event ids are the answer's length in characters after the event, so a client
that reconnects with `Last-Event-ID: n` can be served `content[n:]` from a live
stream or from the saved turn alike.
"""

import re
from collections.abc import Callable

import orjson

from ..providers.kinds import WHOLE
from ..stream.events import DELTA, HEARTBEAT, OUTPUT_EVENTS, Event

SSE_CONTENT_TYPE = "text/event-stream"
NDJSON_CONTENT_TYPE = "application/x-ndjson"

# Sent the moment the response starts, so proxies and clients see a first byte
# before the model has said anything. `retry:` tells an EventSource how long
# to wait before it reconnects (with Last-Event-ID) after a break.
SSE_RETRY_MS = 3000
SSE_OPENING = b": stream open\nretry: %d\n\n" % SSE_RETRY_MS
SSE_HEARTBEAT = b": heartbeat\n\n"
NDJSON_HEARTBEAT = b'{"type":"heartbeat"}\n'


# Only CR, LF and CRLF end an SSE line; str.splitlines() would also split on
# U+2028 and friends, which JSON carries unescaped.
_SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _single_line(value: str) -> str:
    # A newline in `event:` or `id:` would end the field and break framing.
    return value.replace("\r", "").replace("\n", "")


def encode_sse(event: str, data: dict, id: int | str | None = None) -> bytes:
    """One SSE event. JSON never contains a raw newline, but any that reached
    `data` would still be split into several `data:` lines, as the spec wants."""
    lines = [f"event: {_single_line(event)}"]
    if id is not None:
        lines.append(f"id: {_single_line(str(id))}")
    payload = orjson.dumps(data).decode()
    lines.extend(f"data: {line}" for line in _SSE_LINE_BREAK.split(payload))
    return ("\n".join(lines) + "\n\n").encode()


def sse_data(payload: dict) -> bytes:
    """One JSON object as an SSE event of a `data:` line alone: what OpenAI's
    chunks and the AI SDK's UI message stream are (orjson writes no newline)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_ndjson(event: str, data: dict, id: int | str | None = None) -> bytes:
    """The same event as one JSON object on one line, with `type` and `id`."""
    return orjson.dumps({"type": event, "id": id, **data}) + b"\n"


def encode_sse_delta(text: str, id: int) -> bytes:
    """The hot path's `delta` event, built without a dict per token."""
    return b'event: delta\nid: %d\ndata: {"text":%b}\n\n' % (id, orjson.dumps(text))


def encode_ndjson_delta(text: str, id: int) -> bytes:
    return b'{"type":"delta","id":%d,"text":%b}\n' % (id, orjson.dumps(text))


def encode_sse_output(kind: str, text: str, id: int) -> bytes:
    """Any output event: `reasoning` and `refusal` carry {"text"}; a
    `tool_call`'s, `tool_result`'s or `step`'s text is already its JSON
    object (one line: JSON from orjson has no raw newline)."""
    data = text.encode() if kind in WHOLE else b'{"text":%b}' % orjson.dumps(text)
    return b"event: %b\nid: %d\ndata: %b\n\n" % (kind.encode(), id, data)


def encode_ndjson_output(kind: str, text: str, id: int) -> bytes:
    """The same as NDJSON; a tool call, result or step goes under its kind's
    name (`"tool_call": {...}`), since a call's own `id` would collide with
    the event's."""
    if kind in WHOLE:
        return b'{"type":"%b","id":%d,"%b":%b}\n' % (kind.encode(), id, kind.encode(), text.encode())
    return b'{"type":%b,"id":%d,"text":%b}\n' % (orjson.dumps(kind), id, orjson.dumps(text))


class EventWire:
    """How the API's stream responses write the relay's events: each event
    as itself, a heartbeat as the format's own."""

    def __init__(self, content_type: str, opening: bytes, heartbeat: bytes, encoders: "_Encoders") -> None:
        self.content_type = content_type
        self.opening = opening
        self.heartbeat = heartbeat
        self.event, self.delta, self.output = encoders

    def encode(self, event: Event) -> bytes:
        kind, data, event_id = event
        if kind == DELTA:  # first: nearly every event is one
            return self.delta(data, event_id)
        if kind == HEARTBEAT:
            return self.heartbeat
        if kind in OUTPUT_EVENTS:
            return self.output(kind, data, event_id)
        return self.event(kind, data, event_id)


_Encoders = tuple[
    Callable[[str, dict, int], bytes],  # any event
    Callable[[str, int], bytes],  # a delta
    Callable[[str, str, int], bytes],  # reasoning, refusal, tool_call
]

SSE = EventWire(SSE_CONTENT_TYPE, SSE_OPENING, SSE_HEARTBEAT, (encode_sse, encode_sse_delta, encode_sse_output))
# NDJSON has no comments: its first line is the `start` event, sent at once.
NDJSON = EventWire(
    NDJSON_CONTENT_TYPE, b"", NDJSON_HEARTBEAT, (encode_ndjson, encode_ndjson_delta, encode_ndjson_output)
)
