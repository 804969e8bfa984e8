"""What an answer measured as it streamed: when its first output of any
kind (reasoning, a tool call, text) and its first answer text arrived, when
its last output did, the wait before each piece (its timeline), and for a cancel how long
the upstream took to close and how much text still came."""

import time
from array import array

# An answer's timeline keeps the waits of its first this many pieces (2 bytes each).
MAX_TIMELINE_PIECES = 16384


class Figures:
    __slots__ = (
        "received_at",
        "heard_from_model",
        "first_token_at",
        "first_answer_at",
        "last_token_at",
        "gaps",
        "cancelled_at",
        "upstream_closed_at",
        "_deltas_at_cancel",
        "_call_first_at",
        "_earlier_calls_s",
        "calls",
    )

    def __init__(self, received_at: float) -> None:
        self.received_at = received_at  # time.monotonic() when the request arrived
        self.heard_from_model = False  # this call has sent something, output or not
        self.first_token_at: float | None = None  # the first output of any kind
        self.first_answer_at: float | None = None  # the first of the answer's text
        self.last_token_at: float | None = None
        self.gaps = array("H")  # ms waited for each piece of text: the turn's timeline
        self.cancelled_at: float | None = None
        self.upstream_closed_at: float | None = None
        self._deltas_at_cancel = 0
        # A tool loop's model calls: the tokens' pace is measured within each
        # call, never across the tools' time between them.
        self._call_first_at: float | None = None  # the first output of the model call being made
        self._earlier_calls_s = 0.0  # first to last output, of the earlier calls together
        self.calls = 0  # the model calls that produced output

    def call_began(self) -> None:
        """Another model call of a tool loop starts."""
        if self._call_first_at is not None and self.last_token_at is not None:
            self._earlier_calls_s += self.last_token_at - self._call_first_at
        self._call_first_at = None

    def arrived(self, now: float) -> None:
        """A piece of text arrived: note the wait for it (ms, two bytes; the
        first is the time to first token)."""
        if len(self.gaps) < MAX_TIMELINE_PIECES:
            self.gaps.append(min(65535, round((now - (self.last_token_at or self.received_at)) * 1000)))
        self.last_token_at = now
        if self._call_first_at is None:
            self._call_first_at = now
            self.calls += 1

    def cancelled(self, deltas: int) -> None:
        self.cancelled_at, self._deltas_at_cancel = time.monotonic(), deltas

    def ttft_ms(self) -> int | None:
        return _ms(self.first_token_at - self.received_at) if self.first_token_at is not None else None

    def ttft_answer_ms(self) -> int | None:
        return _ms(self.first_answer_at - self.received_at) if self.first_answer_at is not None else None

    def duration_ms(self, ended_at: float) -> int:
        return _ms(ended_at - self.received_at)

    def time_per_output_token(self, tokens: int) -> float | None:
        """Mean seconds between tokens after each model call's first (`tokens`:
        of all the calls; needs more of them than calls)."""
        if self._call_first_at is None or self.last_token_at is None or tokens <= self.calls:
            return None
        generating = self._earlier_calls_s + (self.last_token_at - self._call_first_at)
        return generating / (tokens - self.calls)

    def cancel_latency_ms(self) -> float | None:
        if self.cancelled_at is None or self.upstream_closed_at is None:
            return None  # not cancelled, or cancelled before the model was called
        return round((self.upstream_closed_at - self.cancelled_at) * 1000, 3)

    def tokens_after_cancel(self, deltas: int) -> int | None:
        return deltas - self._deltas_at_cancel if self.cancelled_at is not None else None


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
