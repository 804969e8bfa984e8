"""What this process keeps between requests, and the one `reset()` that
forgets it.

Each piece of process-wide state (a Redis client, the stream slots and
failed-login counts, cached prices, the database threads) registers how it is
forgotten and which settings it is built from. When one of those settings
changes (Django's `setting_changed`: `override_settings`, pytest-django's
`settings`), the pieces built from it are forgotten and built afresh from
the new value at their next use; `reset()` forgets them all, as if the
process had just started. No setting is read at import.

Connections belong to the event loop that opened them, so forgetting a
client closes it on its own loop (`close_on_its_loop`).
"""

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

CLOSE_WAIT_SECONDS = 10.0

Forget = Callable[[], None]
_forgetters: list[tuple[frozenset[str], Forget]] = []
_closing: set[asyncio.Task] = set()  # closings run in the background, held until done


def forgotten_when(*settings: str) -> Callable[[Forget], Forget]:
    """Register the decorated function as the one that forgets a piece of
    state: on `reset()`, and when any of `settings` changes."""

    def register(forget: Forget) -> Forget:
        _forgetters.append((frozenset(settings), forget))
        return forget

    return register


F = TypeVar("F", bound=Callable[..., Any])


def built_from(*settings: str) -> Callable[[F], F]:
    """functools.cache for a function that builds process-wide state (a
    client, a table read from settings), its cache forgotten like any other
    state: on `reset()`, and when any of `settings` changes."""

    def remember(build: F) -> F:
        cached = functools.cache(build)
        _forgetters.append((frozenset(settings), cached.cache_clear))
        return cached  # type: ignore[return-value]  # the same call, cached

    return remember


def reset() -> None:
    """Forget all process-wide state, in the order it was registered."""
    for _, forget in _forgetters:
        forget()


def setting_changed(*, setting: str, **kwargs: Any) -> None:
    """`setting_changed`'s receiver (connected in apps.py)."""
    for settings, forget in _forgetters:
        if setting in settings:
            forget()


def close_on_its_loop(loop: asyncio.AbstractEventLoop, closing: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `closing()` on `loop`, whose connections it closes: waited for
    from another thread; from the loop's own thread (a setting changed by
    async code), in the background. A loop that no longer runs holds no
    connection that could still be closed on it."""
    if loop.is_closed() or not loop.is_running():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task = loop.create_task(closing())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        return
    future = asyncio.run_coroutine_threadsafe(closing(), loop)
    try:
        future.result(timeout=CLOSE_WAIT_SECONDS)
    except Exception as exc:  # closing is best effort: the settings change goes on
        logger.warning("closing connections on a forgotten client failed: %r", exc)
