"""Who reads an answer, and what its last reader's going does
(CHATSTREAM_ON_DISCONNECT): `cancel` stops the model call at once;
`continue` lets it run for CHATSTREAM_RESUME_GRACE_SECONDS, so the client
can come back (GET .../turns/<id>/events), and cancels it if nobody has.
While the server drains its connections (a deploy), a reader's going is not
the client's doing: the answer is interrupted, saved as an error.

An answer waiting for a person to approve a tool call costs nothing and may
be approved from anywhere: its last reader's going does not end it (the
approval's own timeout does). Once the decision is in, an answer nobody
reads gets the grace period, whatever the policy, so the person who decided
can come back to read it.

`Presence` holds only the grace period's timer, never the answer: the relay
passes itself to each call, so the two make no reference cycle and a
finished answer is freed by reference counting.
"""

import asyncio
from typing import Protocol

from ..conf import conf
from . import shutdown
from .events import FinishReason
from .readers import Readers


class Present(Protocol):
    """What of an AnswerRelay its presence reads and tells."""

    readers: Readers

    @property
    def ending(self) -> bool:
        """Its turn is being saved (or is saved): nothing left to stop."""
        ...

    @property
    def awaiting_person(self) -> bool:
        """Is it waiting for a decision on a tool call?"""
        ...

    def cancel(self, reason: str = ...) -> None: ...

    def interrupt(self) -> None: ...


class Presence:
    __slots__ = ("_grace",)

    def __init__(self) -> None:
        self._grace: asyncio.TimerHandle | None = None  # `continue`: the wait for a reader to come back

    @property
    def awaiting_return(self) -> bool:
        """Is the answer waiting (in `continue` mode) for a reader to come back?"""
        return self._grace is not None

    def reader_came(self) -> None:
        if self._grace is not None:  # a reader came back in time
            self._grace.cancel()
            self._grace = None

    def release(self, answer: Present) -> None:
        """A reader is gone: if it was the last and the answer still runs,
        the policy decides."""
        if answer.readers.followers or answer.ending or self._grace is not None:
            return
        if shutdown.draining():  # the server is dropping its connections, not the client
            answer.interrupt()
        elif answer.awaiting_person:
            return  # person_answered() looks again
        elif conf.CHATSTREAM_ON_DISCONNECT == "continue":
            self._start_grace(answer)
        else:
            answer.cancel(FinishReason.CLIENT_DISCONNECTED)

    def person_answered(self, answer: Present) -> None:
        """A wait for approval has ended: an answer nobody reads now gets the grace period."""
        if not (answer.readers.followers or answer.ending or answer.awaiting_person or self._grace is not None):
            self._start_grace(answer)

    def _start_grace(self, answer: Present) -> None:
        loop = asyncio.get_running_loop()
        self._grace = loop.call_later(conf.CHATSTREAM_RESUME_GRACE_SECONDS, self._grace_over, answer)

    def _grace_over(self, answer: Present) -> None:
        self._grace = None
        if not answer.readers.followers:
            answer.cancel(FinishReason.CANCELLED)
