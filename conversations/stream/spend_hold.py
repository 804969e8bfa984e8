"""What the relay asks of an answer's reservation against the budgets
(spend/holds.py's AnswerHold, made by answering.py): the relay never reads
the budgets itself."""

from typing import Protocol

from ..providers import Message
from ..providers.estimates import OutputCount
from .tool_loop import Step


class SpendHold(Protocol):
    def begin(self) -> None:
        """The answer has started: keep its reservation from lapsing."""

    def end(self) -> None:
        """The answer has ended (saved, which settles the reservation)."""

    def room(self, output: OutputCount) -> int:
        """Characters of output this model call may still write within its reservation."""

    async def extend(self, chars: int) -> None:
        """Reserve more output for this call, for `chars` more characters at
        least, as far as the budgets allow (maybe none)."""

    async def next_call(self, steps: list[Step], messages: list[Message]) -> bool:
        """Reserve the tool loop's next call (these steps' cost counted); False: it does not fit."""
