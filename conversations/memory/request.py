"""How a model is asked to update a conversation's memory, and how its reply
is read. The reply is JSON; a model that wraps it in prose or a code fence is
still understood, and one that sends no JSON at all fails the attempt (the
task tries again) rather than overwriting the memory with noise."""

import re

import orjson

from ..exceptions import UpstreamProtocolError
from ..providers import Provider
from ..providers.base import Message

MAX_FACTS = 20
MAX_SUMMARY_CHARS = 4000

INSTRUCTIONS = f"""You maintain the memory of a chat between a user and an assistant.
You get the current memory (a summary and facts the user stated about themselves)
and the turns that came after it. Reply with JSON only, in this shape:
{{"summary": "<the updated summary, at most {MAX_SUMMARY_CHARS} characters>",
  "facts": ["<a durable fact the user stated>", "..."]}}
Keep every fact that still holds, add new ones, drop ones the user corrected.
At most {MAX_FACTS} facts."""

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


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
        raise UpstreamProtocolError(f"The memory model did not answer with the expected JSON: {reply[:200]!r}")
    facts = [str(fact) for fact in data.get("facts") or [] if str(fact).strip()]
    return data["summary"][:MAX_SUMMARY_CHARS], facts[:MAX_FACTS]


async def ask_for_memory(
    provider: Provider, summary: str, facts: list[str], turns: list[Message]
) -> tuple[str, list[str]]:
    """The memory updated with `turns`: the provider's own (the demo keeps
    it offline), or the memory model's reply to `memory_request`."""
    own = await provider.remember(summary, facts, turns)
    if own is not None:
        return own
    reply = await provider.complete(memory_request(summary, facts, turns), model=provider.memory_model)
    return parse_memory_reply(reply)
