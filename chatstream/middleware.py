"""Django's stock middleware, run on the event loop.

Under ASGI, Django wraps each `process_request` and `process_response` of a
`MiddlewareMixin` in `sync_to_async`: a hop to a thread and back, twice per
middleware and request. For the middleware below those hooks only read
headers and set attributes or headers, so they run inline instead; a streaming
request then reaches its view with far less latency and CPU. Anything that
could do I/O keeps its thread: SessionMiddleware's process_response (saves the
session) is not inlined. If a hook here ever touched the database, Django's
async-safety check would raise SynchronousOnlyOperation rather than block.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.deprecation import MiddlewareMixin


class InlineHooks(MiddlewareMixin):
    """Runs the middleware's hooks on the event loop; a subclass whose hook
    may do I/O overrides `_call` to send that case to a thread."""

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = await self._call("process_request", request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self._call("process_response", request, response)
        return response

    async def _call(self, name: str, *args):
        return getattr(self, name)(*args)


async def _in_thread(hook, *args):
    return await sync_to_async(hook, thread_sensitive=True)(*args)


class Security(InlineHooks, SecurityMiddleware):
    pass


class Session(InlineHooks, SessionMiddleware):
    # Creating the lazy session store is free; saving it is database work,
    # needed only when the session changed (API keys never touch it).
    async def _call(self, name: str, *args):
        request = args[0]
        if name == "process_response" and (request.session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return await _in_thread(self.process_response, *args)
        return getattr(self, name)(*args)


class Common(InlineHooks, CommonMiddleware):
    pass


class Csrf(InlineHooks, CsrfViewMiddleware):
    # Reads and sets the CSRF cookie (not CSRF_USE_SESSIONS: check E006).
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        return CsrfViewMiddleware.process_view(self, request, callback, callback_args, callback_kwargs)


class Authentication(InlineHooks, AuthenticationMiddleware):
    # Only attaches the lazy `request.user` / `request.auser`.
    pass


class Messages(InlineHooks, MessageMiddleware):
    # Attaching the storage is free; storing messages may load the session,
    # needed only when messages were read or added.
    async def _call(self, name: str, *args):
        storage = getattr(args[0], "_messages", None)
        if name == "process_response" and storage is not None and (storage.used or storage.added_new):
            return await _in_thread(self.process_response, *args)
        return getattr(self, name)(*args)


class XFrameOptions(InlineHooks, XFrameOptionsMiddleware):
    pass
