"""A conversation's saved turns as the AI SDK's UI messages: what `useChat`
starts from when a page loads (`GET api/ui/chat/<id>/messages`). An answer's
message is the one the SDK builds from its stream (wire/ui_messages.py):
the same parts, in the order they streamed, with the same metadata, so a
page that loads it and a page that watched it stream show the same thing.
"""

from collections.abc import Callable
from typing import Any

import orjson

from ..stream.events import (
    APPROVAL,
    DELTA,
    DONE,
    REASONING,
    REFUSAL,
    STEP,
    TOOL_CALL,
    TOOL_RESULT,
    saved_events,
)
from .ui_messages import finish_metadata, json_or_text

_TEXT_PARTS = {DELTA: "text", REASONING: "reasoning"}


def ui_messages(turns: list[Any], file_url: Callable[[str], str]) -> list[dict[str, Any]]:
    """The turns (a branch, oldest first) as UI messages; `file_url` gives a
    sent file's content URL from its id."""
    return [answer_message(turn) if turn.role == "assistant" else question_message(turn, file_url) for turn in turns]


def question_message(turn: Any, file_url: Callable[[str], str]) -> dict[str, Any]:
    """A user's message: its files (as useChat puts them, first), then its text."""
    files = [
        {"type": "file", "mediaType": file["content_type"], "filename": file["name"], "url": file_url(file["id"])}
        for file in turn.files
    ]
    text = [{"type": "text", "text": turn.content}] if turn.content else []
    return {"id": str(turn.pk), "role": "user", "parts": files + text}


def answer_message(turn: Any) -> dict[str, Any]:
    """An answer's message, its parts as the SDK reads them from its stream."""
    parts: list[dict[str, Any]] = [{"type": "step-start"}]
    *output, (final, data, _) = saved_events(turn, 0)[1:]
    for kind, text, _ in output:
        _add(parts, kind, text, str(turn.pk))
    message: dict[str, Any] = {"id": str(turn.pk), "role": "assistant", "parts": parts}
    if final == DONE:
        message["metadata"] = finish_metadata(str(turn.pk), data)
    return message


def _add(parts: list[dict[str, Any]], kind: str, text: str, turn_id: str) -> None:
    if kind in _TEXT_PARTS:
        _add_text(parts, _TEXT_PARTS[kind], text)
    elif kind == STEP:
        parts.append({"type": "step-start"})
    elif kind == REFUSAL:
        parts.append({"type": "data-refusal", "data": {"text": text}})
    else:
        _add_tool_part(parts, kind, orjson.loads(text), turn_id)


def _add_text(parts: list[dict[str, Any]], part: str, text: str) -> None:
    """Text or reasoning, to the part open for it or a new one. The SDK keeps
    a reasoning part's id (the wire's: its kind's letter and how many text
    and reasoning parts came before, counted from 1), not a text part's."""
    if parts[-1]["type"] == part:
        parts[-1]["text"] += text
        return
    opened = 1 + sum(other["type"] in _TEXT_PARTS.values() for other in parts)
    parts.append({"type": part, **({"id": f"r{opened}"} if part == "reasoning" else {}), "text": text, "state": "done"})


def _add_tool_part(parts: list[dict[str, Any]], kind: str, fields: dict, turn_id: str) -> None:
    if kind == TOOL_CALL:
        input_ = json_or_text(fields["arguments"])
        parts.append(
            {"type": f"tool-{fields['name']}", "toolCallId": fields["id"], "state": "input-available", "input": input_}
        )
    elif kind == TOOL_RESULT:
        called = next((part for part in reversed(parts) if part.get("toolCallId") == fields["id"]), None)
        if called is None:  # its call was not kept: nothing to show it on
            return
        if fields.get("error") is not None:
            called.update(state="output-error", errorText=fields["error"])
        else:
            called.update(state="output-available", output=json_or_text(fields["output"]))
    else:
        assert kind == APPROVAL
        parts.append({"type": "data-approval", "id": fields["id"], "data": {**fields, "turn_id": turn_id}})
