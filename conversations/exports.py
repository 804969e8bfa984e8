"""A conversation as a file to keep: Markdown to read, JSON to process. Both
hold the branch the conversation shows, with each answer's reasoning, tool
calls and refusal when it has them."""

import json
import re
from typing import Any

from .models import Conversation, Turn
from .serializers import conversation_json, turn_json

FORMATS = {"md": "text/markdown; charset=utf-8", "json": "application/json"}


def file_name(conversation: Conversation) -> str:
    """The title made safe for a file name, else the conversation's id."""
    words = re.sub(r"[^\w-]+", "-", conversation.title).strip("-")[:60]
    return words or f"conversation-{conversation.pk}"


def export_json(conversation: Conversation, turns: list[Turn]) -> str:
    document: dict[str, Any] = {**conversation_json(conversation), "turns": [turn_json(turn) for turn in turns]}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def export_markdown(conversation: Conversation, turns: list[Turn]) -> str:
    lines = [f"# {conversation.title or 'Conversation'}", "", f"_Exported from chatstream: {conversation.pk}_", ""]
    for turn in turns:
        lines += _turn_markdown(turn)
    return "\n".join(lines).rstrip() + "\n"


def _turn_markdown(turn: Turn) -> list[str]:
    if turn.role == Turn.Role.USER:
        return ["## You", "", turn.content, ""]
    model = f" ({turn.model_name or turn.model})" if turn.model_name or turn.model else ""
    lines = [f"## Assistant{model}", ""]
    if turn.reasoning:
        # A <details> block: folded in renderers that know it, plain text in the rest.
        lines += ["<details><summary>Reasoning</summary>", "", turn.reasoning, "", "</details>", ""]
    if turn.content:
        lines += [turn.content, ""]
    for call in turn.tool_calls:
        arguments = _fenced(_pretty(call.get("arguments", "")), "json")
        lines += [f"**Tool call** `{call.get('name', '')}`", "", arguments, ""]
    if turn.refusal:
        lines += ["> **Refused:** " + turn.refusal.replace("\n", "\n> "), ""]
    if turn.finish_reason and turn.finish_reason not in (Turn.FinishReason.STOP, Turn.FinishReason.TOOL_CALLS):
        lines += [f"_The answer ended early: {turn.finish_reason}._", ""]
    return lines


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, indent=2)
    except (TypeError, ValueError):
        return arguments  # as the model wrote it


def _fenced(text: str, language: str) -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"
