"""Small or big (`"model": "auto"`): each message goes to the small model or
the big one of LLM_ROUTER, by the operator's rules, first match wins:

    {"small": "small", "big": "big", "classify": true,
     "rules": [{"if": {"min_chars": 2000}, "use": "big"},
               {"if": {"pattern": "(?i)\\\\b(prove|derive|refactor)\\\\b"}, "use": "big"},
               {"if": {"min_turns": 20}, "use": "big"}]}

With no rule matching, the small model is asked for one word (`classify`,
with its own short timeout); without it, or when that call fails, the small
model answers. The decision and its reason are saved on the turn.
"""

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .catalogue import catalogue, entry_named
from .conf import conf
from .exceptions import ApiError, RouterError
from .providers import Completion, Message, provider_for

logger = logging.getLogger(__name__)

CLASSIFY_PROMPT = (
    "You route chat messages. Reply with one word: `big` if answering the user's message needs a large, "
    "capable model (deep reasoning, long or tricky code, careful analysis), or `small` if a small fast model "
    "will do (greetings, quick facts, short rewrites)."
)


# One word is asked for; a few tokens more let a chatty model still say it.
CLASSIFY_MAX_TOKENS = 16


@dataclass(frozen=True)
class Route:
    model: str  # the catalogue's name
    reason: str  # why, for the turn and the admin
    classifier: Completion | None = None  # the small model's call, if it was asked: its counts, for the ledger


@dataclass(frozen=True)
class Rule:
    kind: str  # min_chars, pattern or min_turns
    value: Any
    use: str  # small or big

    def matches(self, content: str, turns: int) -> bool:
        if self.kind == "min_chars":
            return len(content) >= self.value
        if self.kind == "pattern":
            return self.value.search(content) is not None
        return turns >= self.value

    def describe(self) -> str:
        value = self.value.pattern if self.kind == "pattern" else self.value
        return f"{self.kind} {value}"


@dataclass(frozen=True)
class Router:
    small: str
    big: str
    rules: tuple[Rule, ...]
    classify: bool
    classify_timeout: float

    @property
    def needs_turns(self) -> bool:
        return any(rule.kind == "min_turns" for rule in self.rules)

    async def route(self, content: str, count_turns: Callable[[], Awaitable[int]], *, images: bool = False) -> Route:
        """The model for a message; one with `images` goes to a model that
        can see them, whatever the rules (400 if neither can)."""
        if images:
            seeing = self._seeing()
            if len(seeing) == 1:
                return Route(seeing[0], f"images: only {seeing[0]} sees them")
        turns = await count_turns() if self.needs_turns else 0
        for number, rule in enumerate(self.rules, 1):
            if rule.matches(content, turns):
                return Route(getattr(self, rule.use), f"rule {number}: {rule.describe()}")
        if not self.classify:
            return Route(self.small, "no rule matched")
        return await self._classified(content)

    def _seeing(self) -> list[str]:
        seeing = list(dict.fromkeys(name for name in (self.small, self.big) if entry_named(name).vision))
        if not seeing:
            raise ApiError(
                400,
                "model_cannot_see_images",
                f'Neither of "auto"\'s models ({self.small}, {self.big}) can see images; send no image.',
            )
        return seeing

    async def _classified(self, content: str) -> Route:
        """The small model's one word; the small model on any failure."""
        small = entry_named(self.small)
        messages: list[Message] = [
            {"role": "system", "content": CLASSIFY_PROMPT},
            {"role": "user", "content": content[:4000]},
        ]
        call, word = Completion(model=small.model), ""
        try:
            async with asyncio.timeout(self.classify_timeout):
                word = await provider_for(small).complete(
                    messages, model=small.model, completion=call, max_tokens=CLASSIFY_MAX_TOKENS
                )
        except Exception as exc:  # a timeout, an unreachable server: routing must not fail the message
            logger.warning("routing classifier failed: %r detail=%s", exc, getattr(exc, "detail", ""))
            chosen, reason = self.small, f"classifier failed ({type(exc).__name__}): default"
        else:
            chosen, reason = self._verdict(word)
        call.settle(messages, word)
        return Route(chosen, reason, classifier=call)

    def _verdict(self, word: str) -> tuple[str, str]:
        verdict = re.findall(r"\b(big|small)\b", word.lower())
        if not verdict:
            return self.small, f"classifier said {word.strip()[:40]!r}: default"
        return self.big if verdict[0] == "big" else self.small, f"classifier: {verdict[0]}"


def router() -> Router | None:
    """LLM_ROUTER parsed (None when unset); RouterError names what is wrong."""
    return _router(repr(conf.LLM_ROUTER), tuple(catalogue()))


@functools.lru_cache(maxsize=8)
def _router(key: str, names: tuple[str, ...]) -> Router | None:
    given = conf.LLM_ROUTER
    if not given:
        return None
    if not isinstance(given, dict):
        raise RouterError('LLM_ROUTER must be an object: {"small": name, "big": name, "rules": [...]}.')
    for size in ("small", "big"):
        if given.get(size) not in names:
            raise RouterError(f"LLM_ROUTER's {size!r} must name a model of the catalogue ({', '.join(names)}).")
    rules = given.get("rules", [])
    if not isinstance(rules, list):
        raise RouterError("LLM_ROUTER's rules must be a list.")
    return Router(
        small=given["small"],
        big=given["big"],
        rules=tuple(_rule(number, rule) for number, rule in enumerate(rules, 1)),
        classify=bool(given.get("classify", False)),
        classify_timeout=float(given.get("classify_timeout", 2.0)),
    )


def _rule(number: int, given: Any) -> Rule:
    condition = given.get("if") if isinstance(given, dict) else None
    use = given.get("use") if isinstance(given, dict) else None
    if not isinstance(condition, dict) or len(condition) != 1 or use not in ("small", "big"):
        raise RouterError(
            f'LLM_ROUTER rule {number} must read {{"if": {{"min_chars" | "pattern" | "min_turns": …}}, '
            '"use": "big" | "small"}.'
        )
    ((kind, value),) = condition.items()
    if kind in ("min_chars", "min_turns") and isinstance(value, int) and value >= 0:
        return Rule(kind, value, use)
    if kind == "pattern" and isinstance(value, str):
        try:
            return Rule(kind, re.compile(value), use)
        except re.error as exc:
            raise RouterError(
                f"LLM_ROUTER rule {number}'s pattern {value!r} is not a regular expression: {exc}."
            ) from None
    raise RouterError(f"LLM_ROUTER rule {number}: {kind!r} {value!r} is not a condition.")
