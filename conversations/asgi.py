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
"""

import asyncio
import contextlib

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.asgi import get_script_prefix as scope_script_prefix
from django.http import HttpResponseBase
from django.urls import NoReverseMatch, get_script_prefix, reverse, set_script_prefix

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


class ChatstreamASGIHandler(ASGIHandler):
    _api_prefixes: tuple[str, ...] | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self._serves_on_loop(scope):
            await self.handle_on_loop(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _serves_on_loop(self, scope) -> bool:
        if self._api_prefixes is None:
            self._api_prefixes = api_prefixes()  # (): no API here, nothing on the loop
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return path.startswith(self._api_prefixes)

    async def lifespan(self, receive, send) -> None:
        """Start-up: watch for the signal to stop. Shut-down (the server has
        closed its connections): save whatever answers are still running."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                shutdown.watch_signals()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await shutdown.interrupt_all()
                await send({"type": "lifespan.shutdown.complete"})
                return

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
                response = await self._respond_unless_client_leaves(request, receive, send)
        finally:
            body_file.close()
        if response is None:
            signals.request_finished.send(sender=self.__class__)
        else:
            response.close()  # sends request_finished

    async def _respond_unless_client_leaves(self, request, receive, send) -> HttpResponseBase | None:
        """Run the view and send its response; a client that leaves first
        cancels the view (or its streaming body). None if no response was made."""

        async def respond() -> HttpResponseBase:
            response = await self.run_get_response(request)
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


async def _client_left(receive) -> None:
    # After the body, the only message an ASGI server sends is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
