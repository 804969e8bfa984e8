"""Reasoning written inline, as `<think>…</think>` at the start of the
answer's text: what reasoning models (DeepSeek R1, Qwen3, QwQ) send through
a server run without a reasoning parser (llama.cpp with
`--reasoning-format none`, vLLM without `--reasoning-parser`, many proxies).

The tags may be split across chunks, so a tail that could still become one
waits for the next piece; whatever is held goes out when the stream ends.
Only an opening tag at the very start counts: a `<think>` later in an
answer is text the model meant to show.
"""

from .kinds import REASONING, TEXT

OPEN, CLOSE = "<think>", "</think>"


def _held_tail(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    __slots__ = ("_state", "_held", "answering")

    def __init__(self) -> None:
        self._state = "start"  # start (not known yet), thinking, answer_start, answer
        self._held = ""
        self.answering = False  # past any reasoning: text is the answer's as it comes

    def feed(self, text: str) -> list[tuple[str, str]]:
        """The pieces of `text`, as reasoning or answer text."""
        if self._state == "answer":
            return [(TEXT, text)]
        text, self._held = self._held + text, ""
        if self._state == "answer_start":  # the blank lines after </think> are not the answer's
            text = text.lstrip()
            if not text:
                return []
            self._answer()
            return [(TEXT, text)]
        if self._state == "start":
            stripped = text.lstrip()
            if OPEN.startswith(stripped):  # nothing yet, or a tag not finished
                self._held = text
                return []
            if not stripped.startswith(OPEN):
                self._answer()
                return [(TEXT, text)]
            self._state, text = "thinking", stripped[len(OPEN) :].lstrip("\n")
        return self._thinking(text)

    def finish(self) -> list[tuple[str, str]]:
        """What is held when the stream ends (the text of a cut reasoning, say)."""
        held, self._held = self._held, ""
        if not held:
            return []
        return [(REASONING if self._state == "thinking" else TEXT, held)]

    def _thinking(self, text: str) -> list[tuple[str, str]]:
        end = text.find(CLOSE)
        if end < 0:
            # Hold what may begin the closing tag, and the blank space
            # before it: the newline before </think> is not the reasoning's.
            body = text[: len(text) - _held_tail(text, CLOSE)]
            body = body.rstrip()
            text, self._held = body, text[len(body) :]
            return [(REASONING, text)] if text else []
        pieces = [(REASONING, text[:end].rstrip())] if text[:end].strip() else []
        answer = text[end + len(CLOSE) :].lstrip()
        if answer:
            self._answer()
            pieces.append((TEXT, answer))
        else:
            self._state = "answer_start"  # the answer's leading blank lines may still come
        return pieces

    def _answer(self) -> None:
        self._state, self.answering = "answer", True
