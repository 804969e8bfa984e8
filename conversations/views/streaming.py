"""The streaming response: relay events encoded as SSE or NDJSON."""

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse

from .. import sse
from ..conf import conf
from ..live import LiveAnswer
from ..models import Turn
from ..relay import DELTA, HEARTBEAT, START, saved_rest

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def trace_id_for(request: HttpRequest) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new id."""
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def prefers_ndjson(request: HttpRequest) -> bool:
    """NDJSON only when Accept rates it above SSE; SSE otherwise and on ties."""

    def quality(media_type: str) -> float:
        accepted = request.accepted_type(media_type)
        return accepted.quality if accepted is not None else 0.0

    return quality(sse.NDJSON_CONTENT_TYPE) > quality(sse.SSE_CONTENT_TYPE)


async def _body(relay: LiveAnswer, heartbeat: float, wire: sse.WireFormat, after: int) -> AsyncIterator[bytes]:
    if wire.opening:
        yield wire.opening
    try:
        # aclosing: this reader is counted out before the answer is released.
        async with aclosing(relay.follow(heartbeat, after)) as events:
            async for kind, data, event_id in events:
                if kind == DELTA:
                    yield wire.delta(data, event_id)
                elif kind == HEARTBEAT:
                    yield wire.heartbeat
                else:
                    yield wire.event(kind, data, event_id)
    finally:
        await relay.close()


async def _saved_body(turn: Turn, wire: sse.WireFormat, after: int) -> AsyncIterator[bytes]:
    """A finished answer replayed from its row: the same events a live
    reader would have had after character `after`."""
    if wire.opening:
        yield wire.opening
    if not after:
        yield wire.event(START, saved_start_data(turn), 0)
    for kind, data, event_id in saved_rest(turn, after):
        yield wire.delta(data, event_id) if kind == DELTA else wire.event(kind, data, event_id)


def saved_start_data(turn: Turn) -> dict[str, Any]:
    return {
        "turn_id": str(turn.pk),
        "conversation_id": str(turn.conversation_id),
        "trace_id": turn.trace_id,
        "model": turn.model,
    }


class AnswerStreamResponse(StreamingHttpResponse):
    """A stream that stops its answer when Django closes it. If the client
    left before the body was ever read, the body's own cleanup never runs;
    Django still closes the response (on a thread), and that cancels it."""

    def __init__(self, relay: LiveAnswer, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relay = relay

    def close(self) -> None:
        self.relay.release_threadsafe()  # a no-op once the turn is saved
        super().close()


def _stream_headers(response: StreamingHttpResponse, trace_id: str) -> StreamingHttpResponse:
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    response["X-Request-ID"] = trace_id
    return response


def _wire(request: HttpRequest) -> sse.WireFormat:
    return sse.NDJSON if prefers_ndjson(request) else sse.SSE


def stream_response(request: HttpRequest, relay: LiveAnswer, after: int = 0) -> StreamingHttpResponse:
    wire = _wire(request)
    body = _body(relay, conf.CHATSTREAM_HEARTBEAT_SECONDS, wire, after)
    return _stream_headers(AnswerStreamResponse(relay, body, content_type=wire.content_type), relay.trace_id)


def saved_stream_response(request: HttpRequest, turn: Turn, after: int) -> StreamingHttpResponse:
    wire = _wire(request)
    body = _saved_body(turn, wire, min(after, len(turn.content)))
    return _stream_headers(StreamingHttpResponse(body, content_type=wire.content_type), turn.trace_id)
