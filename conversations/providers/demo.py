"""An offline model for development and tests: no network, deterministic.

It answers in readable markdown built from the user's own words, at a steady
pace, so the whole product (streaming, cancel, persistence) can be tried with
nothing else running. Given the demo tools, it calls them when asked the time
or about an order, and answers from their results (demo_tools.py).
"""

import asyncio
import re
from collections.abc import AsyncGenerator

import orjson

from ..catalogue import ModelEntry
from ..conf import conf
from ..files.headings import HEADING
from .base import MAX_FACTS, Completion, Message, Provider
from .demo_files import describe_files
from .demo_tools import Call, answer_from_results, calls_for, calls_preface, offered_tools
from .estimates import message_text, piece_chars, prompt_tokens, tokens_for_chars
from .kinds import REASONING, TEXT, TOOL_CALL, Piece

_WORD = re.compile(r"[\w'-]+")
# Sentences in which a user tells something lasting about themselves.
_FACT = re.compile(
    r"\b(?:I am|I'm|my name is|I live|I work|I like|I love|I prefer|I use|I have|my \w+ is)\b[^.!?\n]*",
    re.IGNORECASE,
)
SUMMARY_LINES = 12
_TOKEN = re.compile(r"\s*\S+|\s+")  # a word with the spaces before it


def compose_answer(question: str) -> str:
    words = _WORD.findall(question)
    longest = max(words, key=len) if words else "nothing"
    keywords = sorted({w.lower() for w in words if len(w) > 3})[:5] or ["(none)"]
    quoted = " ".join(question.split())[:200]
    return (
        f'You asked: "{quoted}". Here is what the demo model can tell about it.\n\n'
        f"- **Words:** {len(words)}, in {len(question)} characters\n"
        f"- **Longest word:** `{longest}`\n"
        f"- **Keywords:** {', '.join(keywords)}\n\n"
        "The same text, shouted back by a line of Python:\n\n"
        "```python\n"
        f"print({quoted!r}.upper())\n"
        "```\n\n"
        "This answer comes from the offline demo model. "
        "Set `LLM_PROVIDER=openai` and `LLM_BASE_URL` to talk to a real one."
    )


def compose_reasoning(question: str) -> str:
    words = _WORD.findall(question)
    return (
        f"The user wrote {len(words)} words. I should count them, find the longest one "
        "and pick out a few keywords, then show the question back in a code block. "
        "A short markdown list will read best."
    )


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _call_pieces(calls: list[Call], completion: Completion) -> list[Piece]:
    """A sentence, then the calls. Each goes through the completion's
    assembler as a whole OpenAI-style fragment, so it is named (`call_0`…)
    and counted as a server's would be: the relay runs what it holds."""
    fragments = [
        {"index": index, "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}
        for index, (name, arguments) in enumerate(calls)
    ]
    preface: list[Piece] = [(TEXT, token) for token in split_tokens(calls_preface(calls))]
    return preface + [(TOOL_CALL, text) for text in completion.tool_calls.feed(fragments)]


def _piece_tokens(piece: Piece) -> int:
    """A word (and the spaces before it) is a token; a tool call, its name
    and arguments as estimates count them."""
    kind, text = piece
    return tokens_for_chars(piece_chars(kind, text)) if kind == TOOL_CALL else 1


def _question_text(message: Message) -> str:
    """The user's own words: a message's text parts without its files'."""
    content = message["content"]
    if isinstance(content, str):
        return content
    texts = [part["text"] for part in content if part.get("type") == "text"]
    return " ".join(text for text in texts if not HEADING.match(text.partition("\n")[0]))


class DemoProvider(Provider):
    name = "demo"

    def __init__(
        self, *, model: str, tokens_per_second: float, first_token_delay: float, reasoning: bool = False
    ) -> None:
        super().__init__(model=model)
        self.pace = 1 / tokens_per_second if tokens_per_second > 0 else 0.0
        self.first_token_delay = first_token_delay
        self.reasoning = reasoning

    @classmethod
    def from_settings(cls) -> "DemoProvider":
        return cls(
            model=conf.LLM_MODEL if conf.LLM_PROVIDER == "demo" else "demo-1",
            tokens_per_second=conf.LLM_DEMO_TOKENS_PER_SECOND,
            first_token_delay=conf.LLM_DEMO_FIRST_TOKEN_DELAY,
            reasoning=conf.LLM_DEMO_REASONING,
        )

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> "DemoProvider":
        return cls(
            model=entry.model,
            tokens_per_second=conf.LLM_DEMO_TOKENS_PER_SECOND,
            first_token_delay=conf.LLM_DEMO_FIRST_TOKEN_DELAY,
            reasoning=entry.reasoning or conf.LLM_DEMO_REASONING,
        )

    async def stream(self, messages: list[Message], completion: Completion) -> AsyncGenerator[list[Piece], None]:
        completion.tokens_in = prompt_tokens(messages)
        completion.responded = True
        calls = self._calls_asked(messages)
        pieces = _call_pieces(calls, completion) if calls else self._answer(messages)
        await asyncio.sleep(self.first_token_delay)
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(self.pace)
            # Counted as each piece goes: a cancel leaves counts of what was
            # sent, the thoughts among the output.
            completion.deltas = index + 1
            completion.tokens_out = (completion.tokens_out or 0) + _piece_tokens(piece)
            if piece[0] == REASONING:
                completion.tokens_reasoning = (completion.tokens_reasoning or 0) + 1
            yield [piece]
        completion.finish_reason = "tool_calls" if calls else "stop"
        completion.usage_reported = True  # as a server's usage chunk comes last

    def _calls_asked(self, messages: list[Message]) -> list[Call]:
        """The tool calls the user's last message asks for, of those offered;
        none once results have come back (the prompt then ends with them)."""
        if not messages or messages[-1]["role"] != "user":
            return []
        return calls_for(message_text(messages[-1]), offered_tools(self.request_options))

    def _answer(self, messages: list[Message]) -> list[Piece]:
        """The text answer: from the tools' results when the prompt ends with
        them, else from the user's words (thinking aloud first, if it does)."""
        if messages and messages[-1]["role"] == "tool":
            return [(TEXT, token) for token in split_tokens(answer_from_results(messages))]
        asked = next((m for m in reversed(messages) if m["role"] == "user"), None)
        question = _question_text(asked) if asked else ""
        files = describe_files(asked) if asked else ""
        answer = files + compose_answer(question) if question or not files else files.rstrip()
        pieces: list[Piece] = [(TEXT, token) for token in split_tokens(answer)]
        if self.reasoning:
            pieces[:0] = [(REASONING, token) for token in split_tokens(compose_reasoning(question))]
        return pieces

    @property
    def memory_model(self) -> str:
        return self.model

    async def remember(self, summary: str, facts: list[str], turns: list[Message]) -> tuple[str, list[str]]:
        """An extractive memory, offline and deterministic: one line per
        question asked, the latest few kept, and the user's sentences about
        themselves as facts."""
        return extract_memory(summary, facts, turns)


def extract_memory(summary: str, facts: list[str], turns: list[Message]) -> tuple[str, list[str]]:
    lines = summary.splitlines()
    found = list(facts)
    for turn in turns:
        if turn["role"] != "user":
            continue
        text = " ".join(message_text(turn).split())
        lines.append(f"- The user asked: {text[:120]}{'…' if len(text) > 120 else ''}")
        for match in _FACT.finditer(text):
            fact = match.group(0).strip()
            if fact.lower() not in {known.lower() for known in found}:
                found.append(fact)
    return "\n".join(lines[-SUMMARY_LINES:]), found[-MAX_FACTS:]
