"""A tool call's result, and a tool's return value as the text the model reads."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson


@dataclass(frozen=True)
class ToolResult:
    """How one call ended: its `output`, or an `error` the model is told."""

    id: str  # the call's id, which the `tool` message answers
    name: str
    output: str | None = None
    error: str | None = None
    duration_ms: int = 0

    @property
    def content(self) -> str:
        """The `tool` message's content: the output, or `{"error": "..."}`."""
        return self.output if self.error is None and self.output is not None else error_text(self.error or "")

    def event(self) -> dict[str, Any]:
        """The `tool_result` event's data: `{"id", "name", "output" | "error", "duration_ms"}`."""
        outcome = {"error": self.error} if self.error is not None else {"output": self.output}
        return {"id": self.id, "name": self.name, **outcome, "duration_ms": self.duration_ms}


def error_text(message: str) -> str:
    return orjson.dumps({"error": message}).decode()


def output_text(value: Any) -> str:
    """A return value as the model reads it: a string as it is, anything
    else as JSON (pydantic models by their `model_dump`). TypeError for a
    value JSON cannot hold."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=_jsonable, option=orjson.OPT_NON_STR_KEYS).decode()


def _jsonable(value: Any) -> Any:
    # orjson knows dataclasses, datetimes, UUIDs and enums itself.
    import pydantic  # imported already: the call's arguments were validated with it

    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Decimal):
        return str(value)  # exact, as the model should read an amount
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def cut(text: str, limit: int) -> str:
    """`text` at most `limit` characters long, then a note saying so, so the
    model knows it did not see all of it."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[chatstream cut this output at {limit} of its {len(text)} characters]"
