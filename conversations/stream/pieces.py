"""How an answer's pieces of output reach its readers (relay.py's
AnswerRelay is a PieceRelay): counted as the model wrote them, within what
the budgets reserved (spend_hold.py), through the on_output guardrails if
any, measured, then appended for the readers."""

import time
from typing import Protocol

from ..exceptions import BudgetReached
from ..providers import REASONING, TEXT, Completion, Piece
from .answer import Answer
from .figures import Figures
from .readers import Readers
from .spend_hold import SpendHold


class OutputGuard(Protocol):
    """The answer's on_output guardrails (guardrails/output.py), as the relay uses them."""

    on_loop: bool  # every one runs on the loop: `feed`, with no await per piece

    @property
    def masked(self) -> int: ...
    def feed(self, pieces: list[Piece]) -> list[Piece]: ...
    async def screen(self, pieces: list[Piece]) -> list[Piece]: ...
    def finish(self, rest: list[Piece]) -> list[Piece]: ...
    def noted(self, answer: Answer) -> Answer: ...


class PieceRelay:
    """The piece-relaying half of AnswerRelay: it sets these attributes."""

    completion: Completion  # the model call being made
    figures: Figures
    readers: Readers
    hold: SpendHold | None  # what the budgets reserved; None: no budget applies
    _guard: OutputGuard | None  # the on_output guardrails; None: there are none

    def _first_output(self, ttft_s: float) -> None:
        """The answer's first output has come (telemetry)."""
        raise NotImplementedError

    def _relay_rest(self) -> None:
        rest = self.completion.rest()
        if self._guard is None:
            self._relay_pieces(rest)
            return
        self._count(rest)
        self._relay_pieces(self._guard.finish(rest), screened=True)

    async def _relay_within_hold(self, pieces: list[Piece]) -> None:
        """Only the output the budgets have reserved for: a piece past it
        reserves more first; what still does not fit is cut there (text to
        the character, a tool call whole) and the answer ends `budget_exceeded`."""
        hold = self.hold
        assert hold is not None
        for kind, text in pieces:
            if len(text) > hold.room(self.completion.output):
                await hold.extend(len(text))
            room = hold.room(self.completion.output)
            if len(text) > room:
                if kind in (TEXT, REASONING) and room > 0:
                    await self._relay_checked([(kind, text[:room])])
                raise BudgetReached
            await self._relay_checked([(kind, text)])

    async def _relay_checked(self, pieces: list[Piece]) -> None:
        """The model's pieces out to the readers, through the guardrails if any."""
        if self._guard is None:
            self._relay_pieces(pieces)
        else:
            await self._relay_screened(pieces)

    async def _relay_screened(self, pieces: list[Piece]) -> None:
        """The model's pieces counted as it wrote them, then relayed as the guardrails let them out."""
        self._count(pieces)
        guard = self._guard
        assert guard is not None
        self._relay_pieces(guard.feed(pieces) if guard.on_loop else await guard.screen(pieces), screened=True)

    def _count(self, pieces: list[Piece]) -> None:
        for kind, text in pieces:  # the model's own output, before masking: what its server would count
            self.completion.output.add(kind, text)

    def _relay_pieces(self, pieces: list[Piece], *, screened: bool = False) -> None:
        figures, readers = self.figures, self.readers
        for kind, text in pieces:
            if not screened:
                self.completion.output.add(kind, text)
            if not text:
                continue
            if "\x00" in text:  # a text column cannot hold NUL (PostgreSQL); client and turn get the same
                text = text.replace("\x00", "\ufffd")
            now = time.monotonic()
            if figures.first_token_at is None:
                figures.first_token_at = now
                self._first_output(now - figures.received_at)
            if kind == TEXT and figures.first_answer_at is None:
                figures.first_answer_at = now
            figures.arrived(now)
            readers.append(text, kind)
