"""A streaming filter that masks e-mail addresses, phone numbers and payment
card numbers (Luhn-checked) in an answer as it streams.

Text goes out as soon as no match could still start in it: the filter holds
back only a tail that is, or may become, part of a match (the `regex`
module's partial matching tells which). Any word may be the start of an
e-mail address, so the last word of the text so far waits for the next
piece (one token's delay); numbers wait until they end. The output is the
same however the upstream split the text (tests/test_redaction.py).
"""

import regex

from ..providers.kinds import WHOLE, Piece

PATTERN = regex.compile(
    r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<card>(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-]))"
    # International (+44 20 7946 0958) or North American ((555) 123-4567,
    # 555-123-4567) forms: plain runs of digits and dates stay as they are.
    r"|(?P<phone>(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){5,12}"
    r"|(?:\(\d{3}\)[ .-]?|\d{3}[.-])\d{3}[.-]\d{4})(?!\d))"
)
MASKS = {"email": "[email]", "card": "[card]", "phone": "[phone]"}


def luhn_valid(number: str) -> bool:
    digits = [int(char) for char in number if char.isdigit()]
    checksum = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        checksum += digit
    return checksum % 10 == 0


def _mask(match: "regex.Match[str]") -> str:
    kind = match.lastgroup or ""
    if kind == "card" and not luhn_valid(match.group()):
        return match.group()  # a long number, but not a card's
    return MASKS[kind]


class Redactor:
    def __init__(self) -> None:
        self._held = ""
        self.masked = 0  # matches masked so far (a long number that fails Luhn is not one)

    def feed(self, text: str) -> str:
        """The part of the text so far that can no longer change, masked."""
        return self._release(self._held + text, final=False)

    def finish(self) -> str:
        """Whatever was held back, masked: the stream has ended."""
        return self._release(self._held, final=True)

    def _release(self, text: str, *, final: bool) -> str:
        out, position = [], 0
        for match in PATTERN.finditer(text, partial=not final):
            # A match that reaches the end may still grow (or fail): hold it.
            # So may a complete one when all the text after it could still
            # be part of it: for "+44 20 7946 " the engine gives "+44 20 7946",
            # which the next piece, "0958", would extend.
            if not final and (match.partial or _may_grow(text, match.start())):
                self._held = text[match.start() :]
                out.append(text[position : match.start()])
                return "".join(out)
            out.append(text[position : match.start()])
            mask = _mask(match)
            self.masked += mask != match.group()
            out.append(mask)
            position = match.end()
        self._held = ""
        out.append(text[position:])
        return "".join(out)


def _may_grow(text: str, start: int) -> bool:
    """Could everything from `start` to the end still become one match?"""
    return PATTERN.fullmatch(text, pos=start, partial=True) is not None


def redact(text: str) -> str:
    """The whole text at once: what the streaming filter must equal."""
    return Redactor()._release(text, final=True)


class OutputRedactor:
    """A Redactor for each kind of text in an answer (text, reasoning,
    refusal). When the kind changes, what the last kind held goes out first,
    so the output keeps its order. Tool calls pass as they are: masking
    inside their JSON arguments would break them."""

    def __init__(self) -> None:
        self._redactors: dict[str, Redactor] = {}
        self._last: str | None = None

    def feed(self, kind: str, text: str) -> list[Piece]:
        out = self.finish() if self._last not in (None, kind) or kind in WHOLE else []
        if kind in WHOLE:
            return [*out, (kind, text)]
        self._last = kind
        masked = self._redactors.setdefault(kind, Redactor()).feed(text)
        return [*out, (kind, masked)] if masked else out

    @property
    def masked(self) -> int:
        return sum(redactor.masked for redactor in self._redactors.values())

    def finish(self) -> list[Piece]:
        """What the last kind held back (at a change of kind, and at the end)."""
        last, self._last = self._last, None
        held = self._redactors[last].finish() if last is not None else ""
        return [(last, held)] if last is not None and held else []
