"""The streaming response, one for every door: an answer's events followed
live or replayed from its saved row, written in the door's wire format
(wire/: chatstream's SSE or NDJSON, OpenAI's chunks)."""

import re
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing

from django.http import HttpRequest, StreamingHttpResponse

from ..conf import conf
from ..live import LiveAnswer
from ..models import Turn
from ..stream.events import Event, saved_events
from ..wire import Wire
from ..wire.events import NDJSON, NDJSON_CONTENT_TYPE, SSE, SSE_CONTENT_TYPE

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def trace_id_for(request: HttpRequest) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new id: the
    same one for the whole request (its answer, its logs, its error)."""
    trace_id = getattr(request, "chatstream_trace_id", None)
    if trace_id is None:
        given = request.headers.get("X-Request-ID", "")
        trace_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.chatstream_trace_id = trace_id  # type: ignore[attr-defined]
    return trace_id


def accepted_quality(request: HttpRequest, media_type: str) -> float:
    """How much the client's Accept wants `media_type` (0: not at all)."""
    accepted = request.accepted_type(media_type)
    return accepted.quality if accepted is not None else 0.0


def prefers_ndjson(request: HttpRequest) -> bool:
    """NDJSON only when Accept rates it above SSE; SSE otherwise and on ties."""
    return accepted_quality(request, NDJSON_CONTENT_TYPE) > accepted_quality(request, SSE_CONTENT_TYPE)


async def _live_body(answer: LiveAnswer, heartbeat: float, wire: Wire, after: int) -> AsyncIterator[bytes]:
    if wire.opening:
        yield wire.opening
    try:
        # aclosing: this reader is counted out before the answer is released.
        async with aclosing(answer.follow(heartbeat, after)) as events:
            encode = wire.encode
            async for event in events:
                yield encode(event)
    finally:
        await answer.close()


async def _saved_body(events: Iterable[Event], wire: Wire) -> AsyncIterator[bytes]:
    """A finished answer replayed from its row: the same events a live
    reader would have had."""
    if wire.opening:
        yield wire.opening
    for event in events:
        yield wire.encode(event)


class EventStreamResponse(StreamingHttpResponse):
    """An answer's events. `parts` is the body as the view made it, bytes an
    event, for a handler that sends it part by part without Django's
    generator layers around it (conversations.asgi); None once anything, a
    middleware say, has replaced the body."""

    def _set_streaming_content(self, value) -> None:
        super()._set_streaming_content(value)  # type: ignore[misc]  # Django's setter of streaming_content
        self.parts = value if not hasattr(self, "parts") else None


class AnswerStreamResponse(EventStreamResponse):
    """A stream that stops its answer when Django closes it. If the client
    left before the body was ever read, the body's own cleanup never runs;
    Django still closes the response (on a thread), and that cancels it."""

    def __init__(self, answer: LiveAnswer, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answer = answer

    def close(self) -> None:
        self.answer.release_threadsafe()  # a no-op once the turn is saved
        super().close()


def _stream_headers(response: StreamingHttpResponse, trace_id: str) -> StreamingHttpResponse:
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    response["X-Request-ID"] = trace_id
    return response


def answer_response(request: HttpRequest, answer: LiveAnswer | Turn, after: int = 0) -> StreamingHttpResponse:
    """An answer's events after character `after`, as the client asked for them."""
    return stream_response(answer, NDJSON if prefers_ndjson(request) else SSE, after)


def stream_response(answer: LiveAnswer | Turn, wire: Wire, after: int = 0) -> StreamingHttpResponse:
    """An answer's events after character `after`, live or saved, in `wire`."""
    if isinstance(answer, Turn):
        events = saved_events(answer, after)
        response = EventStreamResponse(_saved_body(events, wire), content_type=wire.content_type)
    else:
        body = _live_body(answer, conf.CHATSTREAM_HEARTBEAT_SECONDS, wire, after)
        response = AnswerStreamResponse(answer, body, content_type=wire.content_type)
    return _stream_headers(response, answer.trace_id)
