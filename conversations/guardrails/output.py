"""`on_output(kind, text)`: each guardrail in turn sees each piece of the
answer's text, reasoning or refusal as it streams (after the guardrails
before it), and returns None (it passes), the text to send instead (""
holds it back or drops it), or {"stop": reason} (the answer ends, saved as
`guardrail_stopped` with the reason in its error_detail).

The relay sends only what comes out of the last guardrail, and the same
text goes to its readers, the Redis journal and the saved turn: a piece is
screened before any of them has it. Tool calls, their results and steps
are JSON and pass as they are; before one, a guardrail that holds text back
(one with `finish()`, returning the pieces it held: the built-in redaction)
lets it go, so the output keeps its order.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..exceptions import GuardrailStopped
from ..providers.kinds import WHOLE, Piece
from ..stream.answer import Answer
from .hooks import FAILED, FAILED_REASON, failed, fails_closed, run_hook, runs_on_loop
from .loading import with_hook


def output_guard(trace_id: str) -> "OutputGuard | None":
    """The answer's guard; None when no guardrail has on_output (the relay's hot path stays as it was)."""
    classes = with_hook("on_output")
    return OutputGuard(classes, trace_id) if classes else None


class OutputGuard:
    """One instance of each on_output guardrail, for one answer."""

    def __init__(self, classes: Sequence[type], trace_id: str) -> None:
        self.guardrails = [cls() for cls in classes]
        self.trace_id = trace_id
        self.on_loop = all(runs_on_loop(guardrail, "on_output") for guardrail in self.guardrails)
        self.stop_reason = ""

    @property
    def masked(self) -> int:
        """Matches the built-in redaction masked (Turn.redactions)."""
        return sum(getattr(guardrail, "masked", 0) for guardrail in self.guardrails)

    async def screen(self, pieces: list[Piece]) -> list[Piece]:
        """The pieces as the guardrails let them out; GuardrailStopped if one stops the answer."""
        if self.on_loop:
            return self.feed(pieces)
        for guardrail in self.guardrails:
            if runs_on_loop(guardrail, "on_output"):
                pieces = self._through(guardrail, pieces)
                continue
            out: list[Piece] = []
            for kind, text in pieces:
                if kind in WHOLE:
                    out += [*_held(guardrail), (kind, text)]
                    continue
                result = await run_hook(guardrail, "on_output", kind, text, trace_id=self.trace_id)
                out += self._applied(guardrail, kind, text, result)
            pieces = out
        return pieces

    def feed(self, pieces: list[Piece]) -> list[Piece]:
        """`screen` when every guardrail runs on the loop: no await per piece."""
        for guardrail in self.guardrails:
            pieces = self._through(guardrail, pieces)
        return pieces

    def finish(self, rest: list[Piece]) -> list[Piece]:
        """At the end of a model call: the text held back for a tag (`rest`)
        through the guardrails that run on the loop (the others cannot be
        awaited while the turn is saved: it passes them as it is), then
        what each held back."""
        try:
            for guardrail in self.guardrails:
                if runs_on_loop(guardrail, "on_output"):
                    rest = self._through(guardrail, rest)
                rest = [*rest, *_held(guardrail)]
        except GuardrailStopped:
            return []  # stopped while ending: what was held goes nowhere
        return rest

    def noted(self, answer: Answer) -> Answer:
        """The answer with why a guardrail stopped it, if one did."""
        return dataclasses.replace(answer, error_detail=self.stop_reason) if self.stop_reason else answer

    def _through(self, guardrail: Any, pieces: list[Piece]) -> list[Piece]:
        out: list[Piece] = []
        for kind, text in pieces:
            if kind in WHOLE:
                out += [*_held(guardrail), (kind, text)]
                continue
            try:
                result = guardrail.on_output(kind, text)
            except Exception as exc:
                failed(guardrail, "on_output", self.trace_id, repr(exc), exc_info=True)
                result = FAILED
            out += self._applied(guardrail, kind, text, result)
        return out

    def _applied(self, guardrail: object, kind: str, text: str, result: Any) -> list[Piece]:
        if result is None:
            return [(kind, text)]
        if isinstance(result, str):
            return [(kind, result)] if result else []
        if isinstance(result, list):  # pieces: a guardrail that holds text back (the redaction)
            return result
        if isinstance(result, dict) and "stop" in result:
            self._stop(str(result["stop"]) or "A guardrail stopped this answer.")
        if result is not FAILED:
            failed(guardrail, "on_output", self.trace_id, f"returned {result!r:.200}, not None, text or stop")
        if fails_closed():
            self._stop(FAILED_REASON)
        return [(kind, text)]

    def _stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        raise GuardrailStopped(reason)


def _held(guardrail: Any) -> list[Piece]:
    finish = getattr(guardrail, "finish", None)
    return finish() if callable(finish) else []
