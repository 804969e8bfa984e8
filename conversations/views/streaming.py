"""The streaming response: relay events encoded as SSE or NDJSON."""

import re
import uuid
from collections.abc import AsyncIterator

from django.http import HttpRequest, StreamingHttpResponse

from .. import sse
from ..conf import conf
from ..relay import DELTA, HEARTBEAT, AnswerRelay

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


async def _sse_body(relay: AnswerRelay, heartbeat: float) -> AsyncIterator[bytes]:
    yield sse.SSE_OPENING
    try:
        async for kind, data, event_id in relay.follow(heartbeat):
            if kind == DELTA:
                yield sse.encode_sse_delta(data, event_id)
            elif kind == HEARTBEAT:
                yield sse.SSE_HEARTBEAT
            else:
                yield sse.encode_sse(kind, data, event_id)
    finally:
        await relay.close()


async def _ndjson_body(relay: AnswerRelay, heartbeat: float) -> AsyncIterator[bytes]:
    try:
        async for kind, data, event_id in relay.follow(heartbeat):
            if kind == DELTA:
                yield sse.encode_ndjson_delta(data, event_id)
            elif kind == HEARTBEAT:
                yield sse.NDJSON_HEARTBEAT
            else:
                yield sse.encode_ndjson(kind, data, event_id)
    finally:
        await relay.close()


def stream_response(request: HttpRequest, relay: AnswerRelay) -> StreamingHttpResponse:
    heartbeat = conf.CHATSTREAM_HEARTBEAT_SECONDS
    if prefers_ndjson(request):
        body, content_type = _ndjson_body(relay, heartbeat), sse.NDJSON_CONTENT_TYPE
    else:
        body, content_type = _sse_body(relay, heartbeat), sse.SSE_CONTENT_TYPE
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    response["X-Request-ID"] = relay.trace_id
    return response
