"""`before(prompt)`: each guardrail in turn sees the messages about to be
sent, and may refuse the message ({"refuse": reason}) or rewrite the
prompt ({"prompt": messages}); the next one sees the rewritten prompt."""

from typing import Any

from ..exceptions import GuardrailRefused
from ..providers.base import Message
from .hooks import FAILED, FAILED_REASON, failed, fails_closed, run_hook
from .loading import with_hook


async def screened_prompt(messages: list[Message], *, trace_id: str) -> list[Message]:
    """The prompt as the guardrails let it go; GuardrailRefused if one refuses it."""
    for cls in with_hook("before"):
        guardrail = cls()
        result = _checked(guardrail, await run_hook(guardrail, "before", messages, trace_id=trace_id), trace_id)
        if result is FAILED:
            if fails_closed():
                raise GuardrailRefused(FAILED_REASON)
        elif result is not None and "refuse" in result:
            raise GuardrailRefused(str(result["refuse"]) or "A guardrail refused this message.")
        elif result is not None:
            messages = result["prompt"]
    return messages


def _checked(guardrail: object, result: Any, trace_id: str) -> Any:
    """None, {"refuse": reason}, {"prompt": [messages]}; anything else is a failure."""
    if result is None or result is FAILED:
        return result
    if isinstance(result, dict) and ("refuse" in result or _is_prompt(result.get("prompt"))):
        return result
    failed(guardrail, "before", trace_id, f"returned {result!r:.200}, not None, refuse or prompt")
    return FAILED


def _is_prompt(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)
