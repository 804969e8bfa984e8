"""The streaming response: relay events encoded as SSE or NDJSON."""

import re
import uuid
from collections.abc import AsyncIterator

from django.http import HttpRequest, StreamingHttpResponse

from .. import sse
from ..conf import conf
from ..relay import DELTA, HEARTBEAT, AnswerRelay, FinishReason

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


async def _body(relay: AnswerRelay, heartbeat: float, wire: sse.WireFormat) -> AsyncIterator[bytes]:
    if wire.opening:
        yield wire.opening
    try:
        async for kind, data, event_id in relay.follow(heartbeat):
            if kind == DELTA:
                yield wire.delta(data, event_id)
            elif kind == HEARTBEAT:
                yield wire.heartbeat
            else:
                yield wire.event(kind, data, event_id)
    finally:
        await relay.close()


class AnswerStreamResponse(StreamingHttpResponse):
    """A stream that stops its answer when Django closes it. If the client
    left before the body was ever read, the body's own cleanup never runs;
    Django still closes the response (on a thread), and that cancels it."""

    def __init__(self, relay: AnswerRelay, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relay = relay

    def close(self) -> None:
        self.relay.cancel_threadsafe(FinishReason.CLIENT_DISCONNECTED)  # a no-op once the turn is saved
        super().close()


def stream_response(request: HttpRequest, relay: AnswerRelay) -> StreamingHttpResponse:
    wire = sse.NDJSON if prefers_ndjson(request) else sse.SSE
    body = _body(relay, conf.CHATSTREAM_HEARTBEAT_SECONDS, wire)
    response = AnswerStreamResponse(relay, body, content_type=wire.content_type)
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    response["X-Request-ID"] = relay.trace_id
    return response
