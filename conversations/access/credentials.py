"""Who a request's credentials name: a Bearer API key, or else the session
cookie's user. The API's views ask with the request; `asgi.RequestGuard`
asks with the ASGI scope before it reads a body, and hands the user it found
on in the scope, so the view does not look it up again.
"""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.http.cookie import parse_cookie

from ..exceptions import ApiError
from ..storage.threads import run_db
from . import api_keys, throttle

CHECKED_USER = "chatstream.user"  # the scope key the guard leaves the user it found under


def not_authenticated() -> ApiError:
    return ApiError(401, "not_authenticated", "Log in, or send `Authorization: Bearer <api key>`.")


def bearer_key(authorization: str) -> str | None:
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


async def user_for_key(key: str, address: str) -> AbstractBaseUser:
    """The key's user; 401 for a key that is unknown or revoked, 429 past the
    throttle's bars for the key's prefix or the address."""
    account = api_keys.public_part(key)
    await throttle.refuse_if_blocked(address, account)
    user = await run_db(api_keys.user_for_key, key)
    if user is None:
        await throttle.failed(address, account)
        raise ApiError(401, "invalid_api_key", "The API key is unknown or revoked.")
    return user


async def user_for_scope(scope) -> AbstractBaseUser:
    """The user an ASGI request's Authorization header or session cookie
    names, read as Django reads them; ApiError (401, 429) for none."""
    key = bearer_key(_header(scope, b"authorization", ","))
    if key is not None:
        return await user_for_key(key, throttle.scope_address(scope))
    session_key = parse_cookie(_header(scope, b"cookie", "; ")).get(settings.SESSION_COOKIE_NAME)
    user = await run_db(_session_user, session_key) if session_key else None
    if user is None or not user.is_authenticated:
        raise not_authenticated()
    return user


def checked_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The user the guard found for this request, taken (once) from its scope."""
    scope = getattr(request, "scope", None)
    return scope.pop(CHECKED_USER, None) if scope is not None else None


def _session_user(session_key: str):
    # get_user() reads only the request's session: a bare request carrying it will do.
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return get_user(request)


def _header(scope, name: bytes, joiner: str) -> str:
    """A header's values joined as Django's ASGIRequest joins them."""
    return joiner.join(value.decode("latin1") for key, value in scope["headers"] if key.lower() == name)
