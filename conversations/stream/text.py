"""An answer's text as it grows: appended a piece at a time, read from any
character offset."""

# Pieces are merged in runs of this many, so a long answer costs about its
# characters in memory rather than a string object per token (10,000 short
# tokens: ~60 KB instead of ~540 KB), at the price of one join per run.
MERGE_RUN = 64


class AnswerText:
    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._loose = 0  # pieces at the end not merged yet
        self.length = 0

    def append(self, text: str) -> None:
        self._pieces.append(text)
        self.length += len(text)
        self._loose += 1
        if self._loose == MERGE_RUN:
            self._pieces[-MERGE_RUN:] = ["".join(self._pieces[-MERGE_RUN:])]
            self._loose = 0

    def since(self, offset: int) -> str:
        """The text after the first `offset` characters. Walks back from the
        end, so reading the newest text touches only the newest pieces."""
        tail: list[str] = []
        end = self.length
        for piece in reversed(self._pieces):
            if end <= offset:
                break
            start = end - len(piece)
            tail.append(piece[max(0, offset - start) :])
            end = start
        return "".join(reversed(tail))

    def __str__(self) -> str:
        return "".join(self._pieces)
