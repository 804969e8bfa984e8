"""The API's one error shape: {"error": {"code": ..., "message": ...}}."""

import asyncio
import functools
import io
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from django.contrib.auth import get_user
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from ..access import credentials, throttle
from ..conf import conf
from ..exceptions import ApiError
from ..files import limits, uploads
from ..storage.threads import run_db
from .streaming import trace_id_for

logger = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def error_response(status: int, code: str, message: str, **details: object) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **details}}, status=status)


def not_found(what: str = "conversation") -> ApiError:
    return ApiError(404, f"{what}_not_found", f"No {what} with that id belongs to you.")


def parse_id(value: str, what: str = "conversation") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(what) from None


def _unused_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


def _csrf_failed(request: HttpRequest) -> bool:
    # The API views are csrf_exempt so that an unauthenticated request gets a
    # 401 rather than a CSRF 403; session requests are checked here instead.
    return CsrfViewMiddleware(_unused_view).process_view(request, _unused_view, (), {}) is not None


async def authenticate(request: HttpRequest, *, upload: bool = False) -> AbstractBaseUser:
    """The user behind a Bearer key or the session (found already by the
    guard, for a request with a body); ApiError(401) for neither. An
    `upload`'s multipart body is parsed on a thread of its own first: the
    CSRF check reads its form, and parsing it is file I/O."""
    key = credentials.bearer_key(request.headers.get("Authorization", ""))
    user = credentials.checked_user(request) or await _look_up(request, key)
    if key is None and request.method not in SAFE_METHODS:
        if upload:
            await asyncio.to_thread(lambda: request.FILES)
        if _csrf_failed(request):
            raise ApiError(403, "csrf_failed", "CSRF check failed: send the csrftoken cookie's value as X-CSRFToken.")
    return user


async def _look_up(request: HttpRequest, key: str | None) -> AbstractBaseUser:
    if key is not None:
        return await credentials.user_for_key(key, throttle.client_address(request))
    # The session and its user are read on a database thread too, so the
    # request's own thread never opens a connection it would keep.
    user = await run_db(get_user, request)
    if not user.is_authenticated:
        raise credentials.not_authenticated()
    return cast(AbstractBaseUser, user)


def api_view(*methods: str, upload: bool = False) -> Callable:
    """Async API view: method check (405), authentication (401/403), and every
    ApiError or oversized body turned into the JSON error shape. An `upload`
    view takes a multipart body of up to CHATSTREAM_MAX_FILE_BYTES, streamed
    to a temporary file (files/uploads.py), instead of a JSON one."""

    def decorator(view: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                refused = error_response(405, "method_not_allowed", f"{request.method} is not allowed here.")
                refused["Allow"] = ", ".join(methods)
                return refused
            response: HttpResponse
            try:
                if upload:
                    _refuse_large_upload(request)
                user = await authenticate(request, upload=upload)
                if not upload:
                    _refuse_large_body(request)
                response = await view(request, user, *args, **kwargs)
            except ApiError as exc:
                response = error_response(exc.status, exc.code, exc.message, **exc.details)
                for name, value in exc.headers.items():
                    response[name] = value
            except RequestDataTooBig:
                response = _body_too_large()
            except MultiPartParserError as exc:  # an upload's body that is not the multipart it says
                response = error_response(400, "invalid_upload", f"The upload could not be read: {exc}")
            except DatabaseError:
                response = _failed(request, 503, "database_unavailable", "The database is not answering; try again.")
                response["Retry-After"] = "5"
            except Exception:
                response = _failed(request, 500, "internal_error", "Something went wrong on the server.")
            # A stream says how it may be cached; every JSON answer is one user's, now.
            response.setdefault("Cache-Control", "no-store")
            return response

        return wrapper

    return decorator


def _failed(request: HttpRequest, status: int, code: str, message: str) -> JsonResponse:
    """A 5xx: logged with its traceback and the request's trace id, which
    the client gets too (in the body and X-Request-ID) to quote."""
    trace_id = trace_id_for(request)
    logger.exception("api %s %s: %s trace_id=%s", request.method, request.path, code, trace_id)
    response = error_response(status, code, f"{message} (trace id {trace_id})", trace_id=trace_id)
    response["X-Request-ID"] = trace_id
    return response


def _body_too_large() -> JsonResponse:
    return error_response(413, "body_too_large", "The request body is larger than the server accepts.")


def _refuse_large_body(request: HttpRequest) -> None:
    """CHATSTREAM_MAX_BODY_BYTES, whatever the project's own
    DATA_UPLOAD_MAX_MEMORY_SIZE (which refuses larger bodies first)."""
    if len(request.body) > conf.CHATSTREAM_MAX_BODY_BYTES:
        raise RequestDataTooBig


def _refuse_large_upload(request: HttpRequest) -> None:
    """A body that says it is larger than a file may be is refused unread
    (conversations.asgi.RequestGuard refuses it before it arrives); one that
    grows past it is stopped as it is parsed (uploads.LimitedUploadHandler)."""
    length = request.META.get("CONTENT_LENGTH") or _spooled_length(request)
    if not length.isdigit() or int(length) > limits.body_limit():
        raise limits.file_too_large()
    request.upload_handlers = [uploads.LimitedUploadHandler(request)]


def _spooled_length(request: HttpRequest) -> str:
    """A chunked body's length, told to Django's multipart parser (which
    reads a body without Content-Length as empty). Under ASGI the handler
    has spooled the body whole by now, to a file that can say its size."""
    body = request._stream  # type: ignore[attr-defined]  # ASGIRequest's spooled body
    try:
        size = body.seek(0, io.SEEK_END)
        body.seek(0)
    except (AttributeError, OSError, ValueError):
        raise ApiError(411, "length_required", "Send the upload with a Content-Length.") from None
    request.META["CONTENT_LENGTH"] = str(size)
    return str(size)


@csrf_exempt  # any method, session or not: the same JSON 404, never the CSRF page
async def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    response = error_response(404, "not_found", f"There is no API endpoint at {request.path}.")
    response["Cache-Control"] = "no-store"
    return response
