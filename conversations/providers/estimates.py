"""Token counts chatstream makes itself, where a server reported none: one
rule for every place that estimates (a call's usage, a failed or lost
answer's, the prompt budget, a file's share of it).

No tokenizer: the ones that match a model's (OpenAI's BPE files for
tiktoken) are fetched from a host this project cannot reach at run time, so
the rule counts characters, about four a token for Latin text, and adds the
tokens a chat format wraps each message in, as OpenAI's cookbook counts
them. Whatever is counted this way is marked `estimated` on every door.
"""

from typing import Any

import orjson

from .kinds import REASONING, TOOL_CALL

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 3  # each message: its role and the separators around it
REPLY_PRIMING_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>


def tokens_for_chars(chars: int) -> int:
    """The tokens of a text of `chars` characters, rounded half up: at least one for any text."""
    return max(1, (chars + CHARS_PER_TOKEN // 2) // CHARS_PER_TOKEN) if chars > 0 else 0


def text_tokens(text: str) -> int:
    return tokens_for_chars(len(text))


def message_text(message: Any) -> str:
    """What a model reads of one message: its content, as a string or as
    text parts, and its tool calls' names and arguments. OpenAI's own
    history has assistant messages with `tool_calls` and no `content`."""
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = (part.get("text") for part in content if isinstance(part, dict))
        text = " ".join(part for part in texts if isinstance(part, str))
    else:
        text = ""
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        functions = [call.get("function") for call in calls if isinstance(call, dict)]
        text += " ".join(f"{f.get('name', '')} {f.get('arguments', '')}" for f in functions if isinstance(f, dict))
    return text


def message_tokens(message: Any) -> int:
    """One message in a prompt: its text and the format's wrapping."""
    return text_tokens(message_text(message)) + MESSAGE_OVERHEAD_TOKENS


def prompt_tokens(messages: list[Any]) -> int:
    """A whole prompt as a model call sends it: every message, and the reply's priming."""
    return sum(message_tokens(message) for message in messages) + REPLY_PRIMING_TOKENS


def piece_chars(kind: str, text: str) -> int:
    """The characters of one piece of output a model wrote: a tool call's
    name and arguments (its piece is the call as JSON, with an id and keys
    chatstream adds); any other kind's text as it is."""
    if kind != TOOL_CALL:
        return len(text)
    try:
        call = orjson.loads(text)
    except orjson.JSONDecodeError:
        return len(text)
    return len(str(call.get("name", ""))) + len(str(call.get("arguments", "")))


class OutputCount:
    """What one model call has written so far, counted as it streams, so its
    tokens can be estimated however the call ends."""

    __slots__ = ("chars", "reasoning_chars")

    def __init__(self) -> None:
        self.chars = 0  # every kind, reasoning and tool calls included, as servers count completion tokens
        self.reasoning_chars = 0

    def add(self, kind: str, text: str) -> None:
        chars = piece_chars(kind, text)
        self.chars += chars
        if kind == REASONING:
            self.reasoning_chars += chars

    def tokens(self) -> int:
        return tokens_for_chars(self.chars)

    def reasoning_tokens(self) -> int | None:
        """Of tokens(), those spent thinking (never more than tokens()); None without reasoning."""
        return tokens_for_chars(self.reasoning_chars) if self.reasoning_chars else None
