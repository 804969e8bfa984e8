"""One guardrail hook, run as the settings say: an async one on the event
loop, a sync one on a thread (it may block: a network call, a model), each
within CHATSTREAM_GUARDRAIL_TIMEOUT_SECONDS. A hook that raises, outlasts
its time or answers something it may not is logged (a warning with the
trace id) and gives FAILED; CHATSTREAM_GUARDRAIL_FAILURE says what that means.

A class that sets `runs_on_loop = True` has its sync hooks called on the
loop, without a thread: for cheap pure-Python checks (the built-in
redaction), which a thread per piece of output would only slow down.
"""

import asyncio
import inspect
import logging
from typing import Any

from ..conf import conf

logger = logging.getLogger(__name__)

FAILED: Any = object()  # a hook that failed: see fails_closed()
FAILED_REASON = "A guardrail could not check this in time."  # what a closed failure tells the client


def fails_closed() -> bool:
    return conf.CHATSTREAM_GUARDRAIL_FAILURE == "closed"


def runs_on_loop(guardrail: object, hook: str) -> bool:
    """Is the hook called on the loop, unthreaded and untimed (a cheap sync one)?"""
    method = getattr(guardrail, hook)
    return getattr(guardrail, "runs_on_loop", False) and not inspect.iscoroutinefunction(method)


async def run_hook(guardrail: object, hook: str, *args: Any, trace_id: str) -> Any:
    """What the hook returned, or FAILED."""
    method = getattr(guardrail, hook)
    try:
        async with asyncio.timeout(conf.CHATSTREAM_GUARDRAIL_TIMEOUT_SECONDS):
            if inspect.iscoroutinefunction(method):
                return await method(*args)
            if runs_on_loop(guardrail, hook):
                return method(*args)
            return await asyncio.to_thread(method, *args)
    except TimeoutError:
        failed(guardrail, hook, trace_id, f"took longer than {conf.CHATSTREAM_GUARDRAIL_TIMEOUT_SECONDS:g} s")
    except Exception as exc:
        failed(guardrail, hook, trace_id, repr(exc), exc_info=True)
    return FAILED


def failed(guardrail: object, hook: str, trace_id: str, error: str, *, exc_info: bool = False) -> None:
    name = f"{type(guardrail).__module__}.{type(guardrail).__qualname__}"
    policy = conf.CHATSTREAM_GUARDRAIL_FAILURE
    logger.warning(
        "guardrail.failed",
        extra={"trace_id": trace_id, "guardrail": name, "hook": hook, "error": error, "policy": policy},
        exc_info=exc_info,
    )
