"""A web process that is told to stop (SIGTERM, or Ctrl-C) saves every answer
it is generating before it exits.

On the signal, answers get CHATSTREAM_SHUTDOWN_GRACE_SECONDS to end by
themselves; those still running then are interrupted: each is saved with
what it produced, as an `error` with the code `server_shutdown`, and its
client gets that error event (the page offers Retry). The server meanwhile
takes no new connections and waits for the open ones (uvicorn's
--timeout-graceful-shutdown, which should be longer than the grace). At the
ASGI lifespan's shutdown, the last step before the process exits, any answer
still unsaved is interrupted and waited for.

The signal is watched by wrapping the server's own handler (uvicorn installs
it with signal.signal and restores the original when it stops serving). The
wrapper goes in when the first answer starts, so it works under Django's own
ASGI handler, which has no lifespan events; the opt-in handler
(conversations.asgi) also wraps it at start-up and interrupts whatever is
still running at the lifespan's shutdown.
"""

import asyncio
import logging
import signal
import threading

from .. import state
from ..conf import conf
from . import background, registry

logger = logging.getLogger(__name__)

SAVE_WAIT_SECONDS = 10.0  # for the saves of interrupted answers, at the very end

_draining = False
_watching = False


def draining() -> bool:
    """Has this process been told to stop?"""
    return _draining


def watch_signals() -> None:
    """Start draining on SIGTERM or SIGINT, then let the server's handler
    run. Once per process; a no-op off the main thread (signals reach only
    the main thread: `runserver` and the tests serve from others)."""
    global _watching
    if _watching or threading.current_thread() is not threading.main_thread():
        return
    _watching = True
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def on_signal(received, frame, previous=previous) -> None:
            loop.call_soon_threadsafe(begin_draining)
            if callable(previous):
                previous(received, frame)

        signal.signal(signum, on_signal)


@state.forgotten_when()
def forget_draining() -> None:
    """Serve again (the signal handlers, once installed, stay)."""
    global _draining
    _draining = False


def begin_draining() -> None:
    global _draining
    if _draining:
        return
    _draining = True
    running = len(registry.all_answers())
    logger.info("stopping: %s answer(s) running, %g s to end", running, conf.CHATSTREAM_SHUTDOWN_GRACE_SECONDS)
    background.keep(asyncio.create_task(_drain(), name="chatstream drain"))


async def _drain() -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + conf.CHATSTREAM_SHUTDOWN_GRACE_SECONDS
    while registry.all_answers() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await interrupt_all()


async def interrupt_all() -> None:
    """Interrupt every answer still running and wait (bounded) for their saves."""
    answers = registry.all_answers()
    for relay in answers:
        relay.interrupt()
    if answers:
        logger.info("stopping: interrupted %s answer(s)", len(answers))
        async with asyncio.timeout(SAVE_WAIT_SECONDS):
            await asyncio.gather(*(relay.wait_saved() for relay in answers), return_exceptions=True)
