"""Where the API's ORM work runs: a few long-lived threads that keep their
database connections.

Under ASGI, Django runs a request's sync code on a thread made for that
request, which connects to the database and disconnects when the request
ends. A streaming request lasts as long as its answer, so that connection
would be held while tokens flow, and opening and closing one per answer is
most of the database cost of a turn. Instead, `run_db` sends each unit of ORM
work (one transaction or read) to a small pool of threads whose connections
stay open between calls: a stream holds no connection at all while it
streams, and the process holds at most CHATSTREAM_DB_THREADS of them.
"""

import asyncio
import functools
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import DatabaseError, OperationalError, connections

from .. import state
from ..conf import conf
from .calls import Call

P = ParamSpec("P")
R = TypeVar("R")

_SWITCH_INTERVAL = sys.getswitchinterval()  # Python's own, before any setting changed it


class DatabaseThreads(ThreadPoolExecutor):
    def __init__(self, size: int) -> None:
        super().__init__(max_workers=size, thread_name_prefix="chatstream-db")
        self.size = size


@functools.cache
def _executor() -> DatabaseThreads:
    """The database threads, made at the first call from the settings then."""
    # A database call releases the GIL at each query and then waits to take it
    # back; with Python's 5 ms switch interval and a busy event loop that is up
    # to 5 ms a step. bench: at 400 streams the message's response head came
    # after 457 ms (p50) at 5 ms, 10.5 ms at 1 ms, with 72 % and 63 % of the core.
    sys.setswitchinterval(conf.CHATSTREAM_GIL_SWITCH_SECONDS or _SWITCH_INTERVAL)
    return DatabaseThreads(conf.CHATSTREAM_DB_THREADS)


@state.forgotten_when("CHATSTREAM_DB_THREADS", "CHATSTREAM_GIL_SWITCH_SECONDS")
def forget_threads() -> None:
    """New threads at the next call; the old ones close their connections
    and end once their calls are done."""
    if _executor.cache_info().currsize:
        old = _executor()
        _executor.cache_clear()
        close_worker_connections(old)
        old.shutdown(wait=False)


async def run_db(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `func` on a database thread and return its result; OperationalError
    if the database has not answered within CHATSTREAM_DB_TIMEOUT_SECONDS
    (counted from the call, its wait for a free thread included).

    Cancelling the caller does not stop a call that has begun; callers that
    must see it finish shield it."""
    loop = asyncio.get_running_loop()
    call = Call()
    future = loop.run_in_executor(_executor(), functools.partial(_run, call, func, *args, **kwargs))
    limit = conf.CHATSTREAM_DB_TIMEOUT_SECONDS
    try:
        done, _ = await asyncio.wait([future], timeout=limit or None)
    except asyncio.CancelledError:
        future.cancel()  # one still waiting for a thread never runs
        raise
    if not done:
        future.cancel()
        call.break_off()
        raise OperationalError(f"the database did not answer within {limit:g} s")
    return future.result()


def _run(call: Call, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    call.started()
    try:
        return func(*args, **kwargs)
    except DatabaseError:
        # The connection may be broken (the server restarted, the network
        # dropped, the call was broken off): the next call on this thread
        # starts on a new one.
        call.failed()
        release_connections()
        raise
    finally:
        call.finished()


def release_connections() -> None:
    """Hand this thread's database connections back (closed, or to the pool)."""
    for connection in connections.all(initialized_only=True):
        connection.close()


def close_worker_connections(executor: DatabaseThreads | None = None) -> None:
    """Close every database thread's connections, e.g. before the database is
    dropped. Each worker runs one of the closing calls: a barrier holds each
    until all have started."""
    executor = executor or _executor()
    workers = executor.size  # the pool's own, whatever the setting says now
    barrier = threading.Barrier(workers)

    def close_and_wait() -> None:
        release_connections()
        barrier.wait(timeout=10)

    for future in [executor.submit(close_and_wait) for _ in range(workers)]:
        future.result(timeout=15)
