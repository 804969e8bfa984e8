"""Opt-in: Django's ASGI handler, with the app's API served on the event
loop alone, and a lifespan that saves running answers at shutdown.

The app works under Django's own `get_asgi_application()`. This handler is
for projects that want the streaming endpoints' last milliseconds:

    # asgi.py
    django.setup(set_prefix=False)
    from conversations.asgi import ChatstreamASGIHandler
    application = ChatstreamASGIHandler()

For every request the stock handler opens a ThreadSensitiveContext (a thread
of the request's own, started on first use), and sends `request_started`,
`request_finished` and the response's close through it: that is how sync
views, and the signal receivers that close the request's database connection,
share one thread. The API's views are async and do their ORM work on
`storage.threads`' threads, so they never open a connection on the request's
thread, and for them that machinery is pure cost: a thread started and
several hand-offs per request (docs/benchmarks.md has the figure).

So requests under the API's prefix and the OpenAI door's (wherever the
project includes conversations.urls) take `handle_on_loop`: the same steps, the same
middleware and views, the same cancellation of the view when the client
leaves, minus the thread. Every other request keeps the stock path.

`RequestGuard` refuses what the API will refuse anyway before the body is
read (Django's handler reads it whole first): a body over
CHATSTREAM_MAX_BODY_BYTES, a body whose credentials (a Bearer key, a session
cookie) name no user, a body that does not
arrive within CHATSTREAM_BODY_TIMEOUT_SECONDS. The opt-in handler applies it;
under Django's own handler, wrap the application in it:

    application = RequestGuard(get_asgi_application())
"""

import asyncio
import contextlib
import json

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.asgi import get_script_prefix as scope_script_prefix
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase
from django.urls import NoReverseMatch, get_script_prefix, reverse, set_script_prefix

from .conf import conf
from .exceptions import ApiError
from .files import limits
from .stream import shutdown


def api_prefixes() -> tuple[str, ...]:
    """Where the project mounted the API and the OpenAI door (e.g. "/api/"
    and "/v1/"), without any script prefix; none if it did not include
    conversations.urls."""
    try:
        urls = (reverse("conversations:api:root"), reverse("conversations:openai:root"))
    except NoReverseMatch:
        return ()
    return tuple("/" + url.removeprefix(get_script_prefix()) for url in urls)


def upload_path() -> str | None:
    """Where `POST api/files` is (its body may be a file, far over the
    JSON bodies' limit), without any script prefix."""
    try:
        return "/" + reverse("conversations:api:files").removeprefix(get_script_prefix())
    except NoReverseMatch:
        return None


def _under_api(scope, prefixes: tuple[str, ...]) -> bool:
    return _path(scope).startswith(prefixes)


class RequestGuard:
    """ASGI middleware: an API request's body is taken whole, within its size
    and time limits and from a client with credentials, before the app sees
    the request; anything else is refused with the API's JSON error at once."""

    _api_prefixes: tuple[str, ...] | None = None
    _upload_path: str | None = None

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._api_prefixes is None:
            self._api_prefixes, self._upload_path = api_prefixes(), upload_path()
        if not _under_api(scope, self._api_prefixes):
            return await self.app(scope, receive, send)
        upload = _path(scope) == self._upload_path
        refusal = _refusal_before_body(scope, limits.body_limit() if upload else conf.CHATSTREAM_MAX_BODY_BYTES)
        if refusal is not None:
            return await _send_error(send, *refusal)
        if _has_body(scope):
            scope, refused = await _with_checked_user(scope)
            if refused is not None:
                return await _send_error(send, refused.status, refused.code, refused.message, refused.headers)
        if upload:  # streamed on to Django's handler, which spools it to disk
            return await self.app(scope, _limited_upload(receive, send), send)
        try:
            async with asyncio.timeout(conf.CHATSTREAM_BODY_TIMEOUT_SECONDS):
                body, complete = await _read_body(receive, conf.CHATSTREAM_MAX_BODY_BYTES)
        except TimeoutError:
            return await _send_error(send, 408, "body_timeout", "The request body did not arrive in time.")
        if body is None:
            return await _send_error(send, *BODY_TOO_LARGE)
        if not complete:
            return  # the client left
        await self.app(scope, _replay(body, receive), send)


BODY_TOO_LARGE = (413, "body_too_large", "The request body is larger than the server accepts.")


def _path(scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _refusal_before_body(scope, limit: int) -> tuple[int, str, str] | None:
    length = dict(scope["headers"]).get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        too_large = limits.file_too_large()
        return (413, too_large.code, too_large.message) if limit != conf.CHATSTREAM_MAX_BODY_BYTES else BODY_TOO_LARGE
    return None


def _limited_upload(receive, send):
    """`receive` for an upload: its body passed on as it comes, never held
    whole; past the limit (a chunked body says no length) or silent for
    CHATSTREAM_BODY_TIMEOUT_SECONDS, the client gets the error and the app a
    disconnect, so it stops reading."""
    received, complete = 0, False

    async def limited():
        nonlocal received, complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout(conf.CHATSTREAM_BODY_TIMEOUT_SECONDS):
                message = await receive()
        except TimeoutError:
            await _send_error(send, 408, "body_timeout", "The request body stopped arriving.")
            return {"type": "http.disconnect"}
        received += len(message.get("body", b""))
        if received > limits.body_limit():
            too_large = limits.file_too_large()
            await _send_error(send, 413, too_large.code, too_large.message)
            return {"type": "http.disconnect"}
        complete = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return limited


def _has_body(scope) -> bool:
    headers = dict(scope["headers"])
    length = headers.get(b"content-length")
    return (length is not None and length != b"0") or b"transfer-encoding" in headers


async def _with_checked_user(scope) -> tuple[dict, ApiError | None]:
    """The scope with the user its credentials name, or the refusal. Checked,
    not merely present: a made-up cookie or key costs the client a database
    lookup, not the server a body held in memory."""
    from .access import credentials  # it needs the models, which a project's asgi.py imports this before

    try:
        return {**scope, credentials.CHECKED_USER: await credentials.user_for_scope(scope)}, None
    except ApiError as refused:
        return scope, refused
    except DatabaseError:
        down = "The database is not answering; try again."
        return scope, ApiError(503, "database_unavailable", down, headers={"Retry-After": "5"})


async def _read_body(receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole body (None past `limit` bytes), and whether it all came."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive):
    """The body again, as one message; then the server's own messages (the
    disconnect a streaming view listens for)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_error(send, status: int, code: str, message: str, more: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(name.lower().encode(), value.encode()) for name, value in (more or {}).items()]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),  # the rest of the body is not read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ChatstreamASGIHandler(ASGIHandler):
    _api_prefixes: tuple[str, ...] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._guarded_on_loop = RequestGuard(self.handle_on_loop)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self._serves_on_loop(scope):
            await self._guarded_on_loop(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _serves_on_loop(self, scope) -> bool:
        if self._api_prefixes is None:
            self._api_prefixes = api_prefixes()  # (): no API here, nothing on the loop
        return _under_api(scope, self._api_prefixes)

    async def lifespan(self, receive, send) -> None:
        """Start-up: watch for the signal to stop, and start the queued
        messages nothing is answering any more (a restart). Shut-down (the
        server has closed its connections): save whatever answers are still
        running."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                shutdown.watch_signals()
                from .queued import starting  # models: only once the apps are loaded, as they are by now

                await starting.start_waiting_once()  # in a task of its own: start-up does not wait for it
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await shutdown.interrupt_all()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def send_response(self, response, send) -> None:
        """An answer's events go to the server as the view made them: Django
        would pass each through three generator layers and a chunker first,
        a measurable share of relaying a token (docs/benchmarks.md)."""
        parts = getattr(response, "parts", None)
        if parts is None:
            return await super().send_response(response, send)
        await send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
        async with contextlib.aclosing(parts):
            async for part in parts:
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body"})

    async def handle_on_loop(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(scope_script_prefix(scope))
        # Sent in place: their receivers (closing and resetting this thread's
        # database connections) have nothing to do on the event loop's thread.
        signals.request_started.send(sender=self.__class__, scope=scope)
        try:
            request, refusal = self.create_request(scope, body_file)
            response: HttpResponseBase | None = refusal
            if request is None:
                assert refusal is not None  # create_request gives one or the other
                await self.send_response(refusal, send)
            else:
                handed = [request]
                del request  # the view's task takes it from `handed` and lets it go (_release_request)
                response = await self._respond_unless_client_leaves(handed, receive, send)
        finally:
            body_file.close()
        if response is None:
            signals.request_finished.send(sender=self.__class__)
        else:
            response.close()  # sends request_finished

    async def _respond_unless_client_leaves(self, handed: list, receive, send) -> HttpResponseBase | None:
        """Run the view on the request `handed` over and send its response; a
        client that leaves first cancels the view (or its streaming body).
        None if no response was made."""

        async def respond() -> HttpResponseBase:
            response = await self.run_get_response(handed.pop())
            if response.streaming:
                _release_request(response)
            # A client that leaves mid-response cancels this; the response is still closed.
            with contextlib.suppress(asyncio.CancelledError):
                await self.send_response(response, send)
            return response

        responding = asyncio.ensure_future(respond())
        listening = asyncio.ensure_future(_client_left(receive))
        try:
            await asyncio.wait((responding, listening), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            responding.cancel()  # a no-op when it has finished
        try:
            return await responding
        except asyncio.CancelledError:
            return None


def _release_request(response: HttpResponseBase) -> None:
    """Close the request now and let it go: Django keeps it (its META,
    headers, session, user: about 9 KB) until the response closes, minutes
    for a stream, though nothing reads it once the response exists."""
    closers = response._resource_closers  # type: ignore[attr-defined]  # Django appends request.close there
    for close in [c for c in closers if isinstance(getattr(c, "__self__", None), HttpRequest)]:
        closers.remove(close)
        close()


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers and cookies, as Django's handler sends them."""
    headers = [
        (
            name.encode("ascii") if isinstance(name, str) else name,
            value.encode("latin1") if isinstance(value, str) else value,
        )
        for name, value in response.items()
    ]
    headers += [(b"Set-Cookie", cookie.OutputString().encode("ascii")) for cookie in response.cookies.values()]
    return headers


async def _client_left(receive) -> None:
    # After the body, the only message an ASGI server sends is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
