"""A conversation as a file to keep: Markdown to read, JSON to process. Both
hold the branch the conversation shows, with each answer's reasoning, tool
calls and refusal when it has them; a tool-using answer's Markdown follows
it in the order it streamed: each call, the decision on it when it waited
for approval, and its result or error.

The Markdown is read by renderers we do not control, so what users and the
model wrote stays Markdown but cannot become HTML or the file's structure:
every `<` that could open a tag, comment or autolink is written `&lt;`; their
headings go two levels down, so every level-1 and level-2 heading in the file
is chatstream's; a setext underline is escaped; a code fence they left open is
closed before the next turn. Only fences at the start of a line are trusted to
hold code (written as it is): one indented under a list item or quote may end
with its container where a renderer would show what follows as HTML.

Files' bytes are not in either: the Markdown names a message's files under
its text, the JSON carries their metadata (the conversation's files, and each
message's as it was sent, perhaps deleted since).
"""

import json
import re
from typing import Any

import orjson

from .files.sizes import human_size
from .models import Conversation, StoredFile, Turn
from .providers.kinds import APPROVAL, REASONING, REFUSAL, STEP, TOOL_CALL, TOOL_RESULT
from .serializers import conversation_json, file_json, pretty_json, turn_json
from .stream.output import saved_output

FORMATS = {"md": "text/markdown; charset=utf-8", "json": "application/json"}


def file_name(conversation: Conversation) -> str:
    """The title made safe for a file name, else the conversation's id."""
    words = re.sub(r"[^\w-]+", "-", conversation.title).strip("-")[:60]
    return words or f"conversation-{conversation.pk}"


def export_json(conversation: Conversation, turns: list[Turn], *, files: list[StoredFile]) -> str:
    """The conversation, its files' metadata as the API describes a file
    (their bytes stay in storage), and its turns, each message with the
    files it was sent with as they were then."""
    document: dict[str, Any] = {
        **conversation_json(conversation),
        "files": [file_json(stored) for stored in files],
        "turns": [turn_json(turn) for turn in turns],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def export_markdown(conversation: Conversation, turns: list[Turn]) -> str:
    title = _inline(conversation.title) or "Conversation"
    lines = [f"# {title}", "", f"_Exported from chatstream: {conversation.pk}_", ""]
    for turn in turns:
        lines += _turn_markdown(turn)
    return "\n".join(lines).rstrip() + "\n"


def _turn_markdown(turn: Turn) -> list[str]:
    if turn.role == Turn.Role.USER:
        return ["## You", "", _text(turn.content), "", *_attached(turn.files)]
    model = f" ({_inline(turn.model_name or turn.model)})" if turn.model_name or turn.model else ""
    lines = [f"## Assistant{model}", ""]
    lines += _in_stream_order(turn) if turn.output_runs else _by_kind(turn)
    if turn.finish_reason and turn.finish_reason not in (Turn.FinishReason.STOP, Turn.FinishReason.TOOL_CALLS):
        lines += [f"_The answer ended early: {turn.finish_reason}._", ""]
    return lines


def _by_kind(turn: Turn) -> list[str]:
    """An answer whose output is all text, or saved before output_runs was."""
    lines = _reasoning(turn.reasoning) if turn.reasoning else []
    if turn.content:
        lines += [_text(turn.content), ""]
    for call in turn.tool_calls:
        lines += _tool_call(call)
    return lines + (_refusal(turn.refusal) if turn.refusal else [])


def _in_stream_order(turn: Turn) -> list[str]:
    """Each piece of the answer as it streamed: a tool loop's text, calls,
    decisions and results interleaved, as the user saw them."""
    decisions = {request.get("id"): request for request in turn.approvals or ()}
    lines: list[str] = []
    for kind, text, _ in saved_output(turn).since(0):
        if kind == REASONING:
            lines += _reasoning(text)
        elif kind == REFUSAL:
            lines += _refusal(text)
        elif kind == TOOL_CALL:
            lines += _tool_call(orjson.loads(text))
        elif kind == APPROVAL:
            lines += _decision(decisions.get(orjson.loads(text)["id"], {}))
        elif kind == TOOL_RESULT:
            lines += _tool_result(orjson.loads(text))
        elif kind == STEP:
            lines += [f"_Model call {orjson.loads(text)['n']}_", ""]
        elif text.strip():
            lines += [_text(text), ""]
    return lines


def _attached(files: list[dict[str, Any]]) -> list[str]:
    """A message's files, named under its text (their bytes are not in the export)."""
    if not files:
        return []
    named = (
        f"{_inline(str(entry.get('name', '')))} ({_inline(str(entry.get('content_type', '')))}, "
        f"{human_size(entry.get('size') or 0)})"
        for entry in files
    )
    return [f"Attached: {', '.join(named)}", ""]


def _reasoning(text: str) -> list[str]:
    # A <details> block: folded in renderers that know it, plain text in the rest.
    return ["<details><summary>Reasoning</summary>", "", _text(text), "", "</details>", ""]


def _refusal(text: str) -> list[str]:
    # Not in a quote: a quote's "> " would move its tabs, and so which of its fences close.
    return ["**Refused:**", "", _text(text), ""]


def _tool_call(call: dict[str, Any]) -> list[str]:
    arguments = _fenced(pretty_json(call.get("arguments", "")), "json")
    return [f"**Tool call** {_code_span(str(call.get('name', '')))}", "", arguments, ""]


def _decision(request: dict[str, Any]) -> list[str]:
    """Who decided on a call that waited for approval, when, and why."""
    approved = request.get("approved")
    if approved is None:
        return ["_Approval: no decision was made._", ""]
    said = "Approved" if approved else "Denied"
    who = f" by {_inline(request['decided_by'])}" if request.get("decided_by") else ""
    when = f" at {_inline(request['decided_at'])}" if request.get("decided_at") else ""
    why = f": {_inline(request['reason'])}" if request.get("reason") else ""
    return [f"**{said}**{who}{when}{why}", ""]


def _tool_result(result: dict[str, Any]) -> list[str]:
    name, took = _code_span(str(result.get("name", ""))), f" ({result.get('duration_ms')} ms)"
    if result.get("error") is not None:
        return [f"**Error** from {name}{took}:", "", _fenced(str(result["error"]), ""), ""]
    return [f"**Result** of {name}{took}:", "", _fenced(str(result.get("output") or ""), ""), ""]


def _fenced(text: str, language: str) -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


# --- users' and the model's text, made safe to render ---------------------------------
HTML_START = re.compile(r"<(?=[A-Za-z/!?])")  # a tag, a closing tag, a comment, a declaration, an autolink
CONTAINERS = r"(?:[ \t]*(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t])))*[ \t]*"  # quotes and list items
ATX_HEADING = re.compile(rf"^({CONTAINERS})(#{{1,6}})(?=[ \t]|$)")
SETEXT_UNDERLINE = re.compile(rf"^({CONTAINERS})(=+|-+)[ \t]*$")
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")


def _text(text: str) -> str:
    """A turn's Markdown, its code fences kept and the rest made safe."""
    lines, fence, previous = [], "", ""
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):  # CommonMark's line ends
        if fence:
            if _closes(line, fence):
                fence = ""
        elif (opening := FENCE.match(line)) and not ("`" in opening[1] and "`" in opening[2]):
            fence = opening[1]  # a backtick fence's info string has no backtick
        else:
            line = _safe_line(line, after_text=bool(previous.strip()))
        lines.append(line)
        previous = line
    if fence:
        lines.append(fence)  # closed here, not by the next turn's heading
    return "\n".join(lines)


def _closes(line: str, fence: str) -> bool:
    """As CommonMark closes a fence: up to three spaces (not a tab), at least
    as many of its character, nothing after but blanks."""
    return re.fullmatch(rf" {{0,3}}{re.escape(fence)}{re.escape(fence[0])}*[ \t]*", line) is not None


def _safe_line(line: str, *, after_text: bool) -> str:
    line = HTML_START.sub("&lt;", line)
    line = ATX_HEADING.sub(lambda m: m[1] + "#" * min(len(m[2]) + 2, 6), line)
    if after_text:  # under a line of text, `===` or `---` would make it a heading
        line = SETEXT_UNDERLINE.sub(lambda m: m[1] + "\\" + m[2], line, count=1)
    return line


def _inline(text: str) -> str:
    """A title or a model's name: one line, no HTML."""
    return HTML_START.sub("&lt;", " ".join(text.split()))


def _code_span(text: str) -> str:
    """`text` as inline code, its delimiters longer than any run of backticks in it."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    ticks = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{padding}{text}{padding}{ticks}"
