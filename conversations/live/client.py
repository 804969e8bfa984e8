"""One Redis client per event loop (its connections belong to the loop),
for the answers' journal, the limits and the throttle. Used only when
REDIS_URL is set.

Its pool is sized (CHATSTREAM_REDIS_MAX_CONNECTIONS) and a request waits up
to REDIS_POOL_WAIT_SECONDS for a connection rather than failing: redis-py's
default pool raises at once when it is empty, which under a burst of
messages became 500s. When Redis cannot be reached at all, each caller falls
back to what this process knows and says so through `redis_trouble`, once a
minute rather than once a request.
"""

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, TypeVar

from ..conf import conf

if TYPE_CHECKING:
    import redis.asyncio as aioredis

Pool = TypeVar("Pool", bound="aioredis.ConnectionPool")

logger = logging.getLogger(__name__)

REDIS_POOL_WAIT_SECONDS = 5.0
TROUBLE_LOG_EVERY_SECONDS = 60.0

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = weakref.WeakKeyDictionary()
_last_logged: dict[str, float] = {}


def redis_client() -> "aioredis.Redis":
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        import redis.asyncio as aioredis  # here: a process without REDIS_URL never loads redis-py

        pool = aioredis.BlockingConnectionPool.from_url(
            conf.REDIS_URL,
            max_connections=conf.CHATSTREAM_REDIS_MAX_CONNECTIONS,
            timeout=REDIS_POOL_WAIT_SECONDS,
            decode_responses=True,
        )
        client = _clients[loop] = aioredis.Redis.from_pool(packing_in_c(pool))  # closing the client closes the pool
    return client


def packing_in_c(pool: Pool) -> Pool:
    """The pool, its connections packing commands with hiredis's C packer,
    as redis-py's sync connections do; its async ones pack in Python. py-spy
    on a process journaling 100 answers (bench.scale): packing commands was
    about 11 % of its samples (153 of 1,447); bench.journal: a quarter less
    CPU per journal entry."""
    from redis.connection import HiredisRespSerializer
    from redis.utils import HIREDIS_AVAILABLE

    if HIREDIS_AVAILABLE:  # pinned (requirements/base.txt); a project may go without it
        base = pool.connection_class
        if base not in _packing_in_c:
            packer = HiredisRespSerializer()
            pack_command = lambda _, *args: packer.pack(*args)  # noqa: E731
            _packing_in_c[base] = type(base.__name__, (base,), {"pack_command": pack_command})
        pool.connection_class = _packing_in_c[base]
    return pool


_packing_in_c: dict[type, type] = {}  # a connection class -> the same, packing in C


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a call to Redis raises when Redis fails, for an `except` clause,
    which evaluates it only once something is raised: redis-py stays
    unimported in a process without REDIS_URL."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def loops() -> list[asyncio.AbstractEventLoop]:
    """The loops that have a client."""
    return list(_clients)


def forget_trouble() -> None:
    """Log the next trouble at once (Redis has changed)."""
    _last_logged.clear()


async def close_client() -> None:
    """Close this loop's client and its connections."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def redis_trouble(what: str, exc: BaseException) -> None:
    """Log that Redis failed at `what` and this process carries on alone:
    with the traceback the first time, then once a minute at most."""
    now = time.monotonic()
    last = _last_logged.get(what)
    if last is not None and now - last < TROUBLE_LOG_EVERY_SECONDS:
        return
    _last_logged[what] = now
    logger.error(
        "Redis (REDIS_URL) failed at %s: %s; this process carries on with what it knows alone",
        what,
        exc,
        exc_info=last is None,
    )
