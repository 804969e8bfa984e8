"""The built-in guardrail CHATSTREAM_REDACT turns on: e-mail addresses,
phone and card numbers masked as the answer streams (stream/redaction.py's
filter, which holds back a tail that may still become a match)."""

from ..providers.kinds import Piece
from ..stream.redaction import OutputRedactor


class Redaction:
    runs_on_loop = True  # pure and cheap: a thread per piece would only slow it down

    def __init__(self) -> None:
        self._redactor = OutputRedactor()

    def on_output(self, kind: str, text: str) -> list[Piece]:
        return self._redactor.feed(kind, text)

    def finish(self) -> list[Piece]:
        """What it held back: at a tool call, and at the end of each model call."""
        return self._redactor.finish()

    @property
    def masked(self) -> int:
        return self._redactor.masked
