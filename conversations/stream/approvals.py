"""An answer's wait for a person's approval of a tool call.

The decision is written to the database by whichever process served the
request (tool_runs.decide_approval), then this process is woken: by a call
here, or by a message through Redis (live/redis.py). Woken, the wait reads
the decision from the database, which is the only place it is kept. It
reads it every POLL_SECONDS as well, so a wake-up lost on the way delays a
decision, never loses it.

    POST …/approvals ─▶ ToolRun.approval = approved ─▶ decided(call id) ─▶ wait() reads it ─▶ the tool runs
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..exceptions import ApprovalTimedOut

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str = ""


ReadDecision = Callable[[str], Awaitable[Decision | None]]  # a call id's decision; None while pending


class Approvals:
    """The calls of one answer waiting for a decision."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Event] = {}

    @property
    def pending(self) -> bool:
        """Is the answer waiting for a person (not for the model)?"""
        return bool(self._waiting)

    def decided(self, call_id: str) -> None:
        """A decision on `call_id` has been written: read it now."""
        if (woken := self._waiting.get(call_id)) is not None:
            woken.set()

    async def wait(self, call_id: str, read: ReadDecision, timeout: float) -> Decision:
        """The decision on `call_id`; ApprovalTimedOut if none comes in `timeout` seconds."""
        woken = self._waiting[call_id] = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while (decision := await read(call_id)) is None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_SECONDS):
                            await woken.wait()
                    woken.clear()
                return decision
        except TimeoutError:
            raise ApprovalTimedOut(f"No decision on the call {call_id!r} within {timeout:g} s.") from None
        finally:
            del self._waiting[call_id]
