"""Opt-in: Django's stock middleware, run on the event loop.

The app works with Django's own middleware. These are the same classes with
one difference, for projects that want the streaming endpoints' last
milliseconds: under ASGI, Django wraps each `process_request` and `process_response` of a
`MiddlewareMixin` in `sync_to_async`: a hop to a thread and back, twice per
middleware and request. For the middleware below those hooks only read
headers and set attributes or headers, so they run inline instead; a streaming
request then reaches its view with far less latency and CPU. A hook that
could do I/O keeps its thread whenever it might: the session's save when the
session changed, the messages' store when messages were read or added. If a
hook here ever touched the database, Django's async-safety check would raise
SynchronousOnlyOperation rather than block.

To use them, replace each stock entry of MIDDLEWARE with its namesake here
(conversations.middleware.Security for django.middleware.security.
SecurityMiddleware, and so on); docs/deployment.md has the list and what it
saves, measured.
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
    """Runs the middleware's hooks on the event loop; a subclass whose
    process_response may do I/O says when in `response_needs_thread`."""

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request):
                return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            response = self.process_response(request, response)
        return response

    def response_needs_thread(self, request) -> bool:
        return False


class Security(InlineHooks, SecurityMiddleware):
    pass


class Session(InlineHooks, SessionMiddleware):
    # Creating the lazy session store is free; saving it is database work,
    # needed only when the session changed (API keys never touch it).
    def response_needs_thread(self, request) -> bool:
        return request.session.modified or settings.SESSION_SAVE_EVERY_REQUEST


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
    def response_needs_thread(self, request) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)

    def process_response(self, request, response):
        response = super().process_response(request, response)
        # The storage points back at the request: a cycle that would keep
        # the request (for a stream, its whole life and after) until the
        # cycle collector runs. Stored already; nothing reads it after this.
        request.__dict__.pop("_messages", None)
        return response


class XFrameOptions(InlineHooks, XFrameOptionsMiddleware):
    pass


try:  # Django 6.0 and later
    from django.middleware.csp import ContentSecurityPolicyMiddleware
except ImportError:  # Django 5.2: no Content-Security-Policy middleware of its own
    pass
else:

    class ContentSecurityPolicy(InlineHooks, ContentSecurityPolicyMiddleware):
        # Makes the nonce lazily and sets a header from settings.
        pass
