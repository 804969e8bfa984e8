"""What the demo model says of the files a message sends: each one's name,
type and size, an image's width and height, a document's first words, read
from the prompt as any model gets it (files/headings.py), so `make run`
shows files at work with no model server."""

from typing import Any

from ..files.headings import HEADING
from .base import Message

FIRST_WORDS = 12


def describe_files(message: Message) -> str:
    """A paragraph on the message's files; "" for a message without any."""
    content = message["content"]
    if not isinstance(content, list):
        return ""
    lines = [line for part in content if (line := _described(part))]
    if not lines:
        return ""
    count = f"{len(lines)} file{'s' if len(lines) > 1 else ''}"
    return f"You sent {count}:\n\n" + "\n".join(lines) + "\n\n"


def _described(part: dict[str, Any]) -> str:
    if part.get("type") != "text":
        return ""
    first, _, rest = part["text"].partition("\n")
    found = HEADING.match(first)
    if found is None:
        return ""
    facts = found["facts"].split(", ")
    if found["what"] == "Image":
        size = f", {facts[1].replace('×', ' × ')} pixels" if len(facts) > 2 else ""
        return f"- **{found['name']}**: an image ({facts[0]}{size}, {facts[-1]})"
    words = rest.split()
    opening = " ".join(words[:FIRST_WORDS]) + ("…" if len(words) > FIRST_WORDS else "")
    said = f', beginning "{opening}"' if opening and not rest.startswith("[") else ""
    return f"- **{found['name']}**: a document ({facts[0]}, {facts[-1]}){said}"
