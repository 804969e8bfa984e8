"""How a model is asked to update a conversation's memory, and how its reply
is read. The reply is JSON; a model that wraps it in prose or a code fence is
still understood, and one that sends no JSON at all fails the attempt (the
task tries again) rather than overwriting the memory with noise."""

import re

import orjson

from ..catalogue import catalogue
from ..conf import conf
from ..exceptions import UpstreamProtocolError
from ..providers import Completion, Provider
from ..providers.base import MAX_FACTS, MAX_SUMMARY_CHARS, Message
from ..providers.estimates import CHARS_PER_TOKEN, message_text, text_tokens

# The reply's room: a summary of MAX_SUMMARY_CHARS (~1,000 tokens) and the
# facts, with some to spare; also the bound sent with the call.
MEMORY_REPLY_TOKENS = 2048
TURN_OVERHEAD_TOKENS = 4  # "role: " and the blank line between turns
MIN_TURN_TOKENS = 256  # a first turn is cut to at least this, however small the budget

INSTRUCTIONS = f"""You maintain the memory of a chat between a user and an assistant.
You get the current memory (a summary and facts the user stated about themselves)
and the turns that came after it. Reply with JSON only, in this shape:
{{"summary": "<the updated summary, at most {MAX_SUMMARY_CHARS} characters>",
  "facts": ["<a durable fact the user stated>", "..."]}}
Keep every fact that still holds, add new ones, drop ones the user corrected.
At most {MAX_FACTS} facts."""

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def memory_context_tokens(model: str) -> int:
    """The memory model's prompt budget: its catalogue entry's, else LLM_CONTEXT_TOKENS."""
    entries = (entry for entry in catalogue().values() if entry.model == model)
    return next((entry.context_tokens for entry in entries), conf.LLM_CONTEXT_TOKENS)


def fit_turns(summary: str, facts: list[str], turns: list[Message], budget: int) -> list[Message]:
    """The turns, oldest first, that the memory request has room for within
    `budget` tokens (the reply's room set aside): as many whole turns as fit,
    and always the first, cut in its middle if it alone is too long. The
    turns left out are covered by the next call."""
    room = budget - MEMORY_REPLY_TOKENS - text_tokens(message_text(memory_request(summary, facts, [])[1]))
    room -= text_tokens(INSTRUCTIONS)
    fitted: list[Message] = []
    for turn in turns:
        cost = text_tokens(message_text(turn)) + TURN_OVERHEAD_TOKENS
        if cost > room:
            if not fitted:
                fitted.append({"role": turn["role"], "content": _cut(message_text(turn), max(room, MIN_TURN_TOKENS))})
            break
        fitted.append(turn)
        room -= cost
    return fitted


def _cut(text: str, tokens: int) -> str:
    """`text` within about `tokens`, its beginning and end kept."""
    keep = tokens * CHARS_PER_TOKEN // 2
    return f"{text[:keep]}\n[… {len(text) - 2 * keep} characters left out …]\n{text[-keep:]}"


def memory_request(summary: str, facts: list[str], turns: list[Message]) -> list[Message]:
    current = {"summary": summary, "facts": facts}
    transcript = "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {
            "role": "user",
            "content": f"Current memory:\n{orjson.dumps(current).decode()}\n\nNew turns:\n{transcript}",
        },
    ]


def parse_memory_reply(reply: str) -> tuple[str, list[str]]:
    found = _JSON_OBJECT.search(reply)
    try:
        data = orjson.loads(found.group(0)) if found else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("summary"), str):
        raise UpstreamProtocolError(
            "The memory model did not answer with the expected JSON.", detail=f"its reply: {reply[:200]!r}"
        )
    facts = [str(fact) for fact in data.get("facts") or [] if str(fact).strip()]
    return data["summary"][:MAX_SUMMARY_CHARS], facts[:MAX_FACTS]


async def ask_for_memory(
    provider: Provider, summary: str, facts: list[str], turns: list[Message], call: Completion
) -> tuple[str, list[str]]:
    """The memory updated with `turns`: the provider's own (the demo keeps
    it offline), or the memory model's reply to `memory_request`, its counts
    on `call` (reported, or estimated however the call ended)."""
    own = await provider.remember(summary, facts, turns)
    if own is not None:
        return own
    request, reply = memory_request(summary, facts, turns), ""
    try:
        reply = await provider.complete(request, model=call.model, completion=call, max_tokens=MEMORY_REPLY_TOKENS)
    finally:
        call.settle(request, reply)
    return parse_memory_reply(reply)
