"""A timer that fires after a quiet spell, cheap to keep quiet.

A stream's idle timeout and its heartbeat both mean "N seconds with no
token". Moving an `asyncio.timeout()` at every token costs a timer cancelled
and another scheduled per token, a measurable part of relaying one (bench/).
A Watchdog keeps a single timer per quiet period instead: `touch()` only
notes the time, and when the timer comes due it either fires (the quiet spell
was long enough) or sleeps again until `seconds` after the last touch.
"""

import asyncio
from collections.abc import Callable

# Loop timers may fire up to a clock tick early; never re-arm for less.
_TICK = 0.001


class Watchdog:
    def __init__(self, seconds: float, fire: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self.seconds = seconds
        self._fire = fire
        self._last = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self._last + seconds, self._due)

    def touch(self) -> None:
        self._last = self._loop.time()

    def restart(self, seconds: float) -> None:
        """A new length of quiet, counted from now."""
        self.cancel()
        self.seconds, self._last = seconds, self._loop.time()
        self._handle = self._loop.call_at(self._last + seconds, self._due)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _due(self) -> None:
        now = self._loop.time()
        if now + _TICK >= self._last + self.seconds:
            self._last = now  # the next firing needs another full quiet spell
            self._fire()
        if self._handle is not None:  # `fire` may have cancelled us
            self._handle = self._loop.call_at(self._last + self.seconds, self._due)
