"""Failed logins and API keys, counted per client address and per account
(a username, a key's prefix). Past CHATSTREAM_AUTH_FAILURES from one address,
or CHATSTREAM_AUTH_ACCOUNT_FAILURES for one account from all addresses
together, in AUTH_WINDOW_SECONDS, the attempt is refused (429, Retry-After)
until the window moves on, right or wrong, so passwords and keys cannot be
guessed at the speed of the server.

The account's own bar is much higher than the address's: failures sent from
many addresses would otherwise lock the owner out from their own. An account
guessed at from one address meets the address's bar first; from many, each
address gets its few guesses and the account its many.

With REDIS_URL the counts live in Redis and hold across processes; otherwise
in this process's memory.
"""

import math
import time
from collections import defaultdict, deque

from asgiref.sync import async_to_sync

from .. import state
from ..conf import conf
from ..exceptions import ApiError
from ..live.client import redis_client, redis_errors, redis_trouble

AUTH_WINDOW_SECONDS = 900.0

# (what a failure counts against, how many failures it may have; 0: no bar)
Bar = tuple[str, int]


def too_many_failures(retry_after: float) -> ApiError:
    return ApiError(
        429,
        "too_many_failures",
        "Too many failed attempts to log in or use a key from here or for this account; try again later.",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def client_address(request) -> str:
    """The address the request came from, as the server saw it (uvicorn's
    --proxy-headers puts the client's there when it sits behind a proxy)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def scope_address(scope) -> str:
    """client_address() for an ASGI scope, before there is a request (Django's
    REMOTE_ADDR is the scope's client host)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class LocalThrottle:
    def __init__(self) -> None:
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    async def refuse_if_blocked(self, *bars: Bar) -> None:
        now = time.monotonic()
        for name, limit in bars:
            failures = self._recent(name, now)
            if limit and len(failures) >= limit:
                raise too_many_failures(failures[0] + AUTH_WINDOW_SECONDS - now)

    async def failed(self, *names: str) -> None:
        now = time.monotonic()
        for name in names:
            self._recent(name, now).append(now)

    def _recent(self, name: str, now: float) -> deque[float]:
        failures = self._failures[name]
        while failures and failures[0] <= now - AUTH_WINDOW_SECONDS:
            failures.popleft()
        return failures


class RedisThrottle:
    """A count per name and window: one INCR per failure, one MGET per check;
    in this process while Redis cannot be reached."""

    def __init__(self) -> None:
        self._here = LocalThrottle()

    async def refuse_if_blocked(self, *bars: Bar) -> None:
        window = self._window()
        try:
            counts = await redis_client().mget([self._key(name, window) for name, _ in bars])
        except redis_errors() as exc:
            redis_trouble("checking failed logins", exc)
            return await self._here.refuse_if_blocked(*bars)
        if any(limit and int(count or 0) >= limit for (_, limit), count in zip(bars, counts, strict=True)):
            raise too_many_failures((window + 1) * AUTH_WINDOW_SECONDS - time.time())

    async def failed(self, *names: str) -> None:
        window = self._window()
        try:
            async with redis_client().pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.incr(self._key(name, window))
                    pipe.expire(self._key(name, window), int(AUTH_WINDOW_SECONDS))
                await pipe.execute()
        except redis_errors() as exc:
            redis_trouble("counting a failed login", exc)
            await self._here.failed(*names)

    @staticmethod
    def _window() -> int:
        return int(time.time() // AUTH_WINDOW_SECONDS)

    @staticmethod
    def _key(name: str, window: int) -> str:
        return f"chatstream:auth-failures:{name}:{window}"


# Forgotten with REDIS_URL: failed logins counted in this process start afresh (Redis keeps its own).
@state.built_from("REDIS_URL")
def throttle() -> LocalThrottle | RedisThrottle:
    return RedisThrottle() if conf.REDIS_URL else LocalThrottle()


def bars_for(address: str, account: str) -> tuple[Bar, Bar]:
    """What a failure counts against, and each one's bar."""
    return (
        (f"address:{address}", conf.CHATSTREAM_AUTH_FAILURES),
        (f"account:{account}", conf.CHATSTREAM_AUTH_ACCOUNT_FAILURES),
    )


def _on() -> bool:
    return bool(conf.CHATSTREAM_AUTH_FAILURES or conf.CHATSTREAM_AUTH_ACCOUNT_FAILURES)


async def refuse_if_blocked(address: str, account: str) -> None:
    if _on():
        await throttle().refuse_if_blocked(*bars_for(address, account))


async def failed(address: str, account: str) -> None:
    if _on():
        await throttle().failed(*(name for name, _ in bars_for(address, account)))


# For the failed-login signal's receiver (conversations/access/logins.py), sync.
failed_sync = async_to_sync(failed)
