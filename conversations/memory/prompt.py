"""The prompt for an answer: the system prompt, the conversation's memory,
then as many of the latest turns as fit the token budget, newest last.

Long conversations stay cheap this way: what no longer fits is carried by the
memory (tasks.py), not resent with every message.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..conf import conf
from ..files import parts
from ..providers.base import Message
from ..providers.estimates import MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMING_TOKENS, message_text, text_tokens


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    turns: int  # conversation turns included, the new message among them
    tokens: int  # estimated size of the whole prompt
    file_cuts: list[dict[str, Any]] = field(default_factory=list)  # the new message's documents cut to fit


def memory_text(summary: str, facts: list[str]) -> str:
    parts = []
    if summary:
        parts.append(f"Summary of the conversation so far:\n{summary}")
    if facts:
        parts.append("Facts the user has stated:\n" + "\n".join(f"- {fact}" for fact in facts))
    return "\n\n".join(parts)


def _cost(content: str) -> int:
    return text_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def assemble(
    *, system: str, summary: str, facts: list[str], newest_first: Iterable[list[Message]], budget: int
) -> Prompt:
    """`newest_first` yields each turn's messages (one, or an answer's tool
    steps) from the new message backwards; it is read only as far as the
    budget allows. The new message is always sent, even alone over the
    budget (the message limit bounds its text; its documents are cut to
    fit). An earlier message's files go again while they fit, else a note
    names them; its images only with CHATSTREAM_IMAGES_IN_HISTORY."""
    head: list[Message] = [{"role": "system", "content": system}]
    remembered = memory_text(summary, facts)
    if remembered:
        head.append({"role": "system", "content": remembered})
    used = sum(_cost(message_text(message)) for message in head) + REPLY_PRIMING_TOKENS
    picked: list[list[Message]] = []
    cuts: list[dict[str, Any]] = []
    for messages in newest_first:
        if not picked:
            messages, cuts = _fitted_new(messages, budget - used)
        else:
            messages = [parts.earlier(message) for message in messages]
        cost = _turn_cost(messages)
        if picked and used + cost > budget:
            lighter = [parts.without_files(message) for message in messages]
            cost = _turn_cost(lighter)
            if used + cost > budget:
                break
            messages = lighter
        picked.append(messages)
        used += cost
    picked.reverse()
    return Prompt(messages=head + [m for turn in picked for m in turn], turns=len(picked), tokens=used, file_cuts=cuts)


def _fitted_new(messages: list[Message], room: int) -> tuple[list[Message], list[dict[str, Any]]]:
    if len(messages) != 1:
        return messages, []
    fitted, cuts = parts.fit_documents(messages[0], room - MESSAGE_OVERHEAD_TOKENS)
    return [fitted], cuts


def _turn_cost(messages: list[Message]) -> int:
    if len(messages) == 1 and isinstance(messages[0]["content"], str):
        return _cost(messages[0]["content"])
    return sum(_message_cost(message) for message in messages)


def _message_cost(message: Message) -> int:
    if parts.placeholders(message):
        return parts.message_tokens(message) + MESSAGE_OVERHEAD_TOKENS
    return _cost(message_text(message))


def given_prompt(messages: list[Message], *, memory: tuple[str, list[str]] | None = None) -> Prompt:
    """A whole prompt from a client (the OpenAI door), sent as it is; with
    `memory` (summary, facts), the memory goes after its system messages."""
    remembered = memory_text(*memory) if memory else ""
    if remembered:
        system = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
        messages = [*messages[:system], {"role": "system", "content": remembered}, *messages[system:]]
    tokens = sum(_cost(message_text(message)) for message in messages) + REPLY_PRIMING_TOKENS
    return Prompt(messages=messages, turns=sum(m.get("role") in ("user", "assistant") for m in messages), tokens=tokens)


def largest_message_tokens() -> int:
    """The estimated size of one message at CHATSTREAM_MAX_MESSAGE_CHARS."""
    return text_tokens("x" * conf.CHATSTREAM_MAX_MESSAGE_CHARS) + MESSAGE_OVERHEAD_TOKENS


# How an answer that stopped is carried on: its text as the assistant's last
# message, then a request to go on. Every OpenAI-compatible server takes
# this (a trailing assistant message alone is continued by some servers and
# answered anew by others).
CONTINUE_INSTRUCTION = (
    "Continue your last answer exactly where it stopped, mid-sentence if need be. "
    "Do not repeat any of it and do not comment on it: write only what comes next."
)


def continuation(prompt: Prompt, partial: str | list[Message]) -> Prompt:
    """The prompt that asked for an answer, asking now for the rest of
    `partial`: its text, or (a tool loop's answer) its messages, each step's
    calls and results then its last text (tool_loop.answer_messages)."""
    said: list[Message] = [{"role": "assistant", "content": partial}] if isinstance(partial, str) else partial
    return carried_on(prompt, [*said, {"role": "user", "content": CONTINUE_INSTRUCTION}])


def carried_on(prompt: Prompt, messages: list[Message]) -> Prompt:
    """The prompt that asked for an answer, with what the answer has said
    since (and what it was told: a continuation's request, a client's tool
    results) after it."""
    extra = sum(_cost(message_text(message)) for message in messages)
    return Prompt(messages=[*prompt.messages, *messages], turns=prompt.turns + 1, tokens=prompt.tokens + extra)
