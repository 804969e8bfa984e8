"""A Responses request's `input` as chat messages (responses_request.py
says how each item becomes one), its shape checked on the way: a 400 names
the item at fault (`input[2].content[0].type`)."""

from typing import Any

from .openai_request import UNSUPPORTED, invalid

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}


def chat_messages(given: object) -> list[dict[str, Any]]:
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise invalid("input", "Send `input`: a string, or a non-empty list of messages and items.")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(given):
        message = _message_of(f"input[{index}]", item)
        if message is None:
            continue
        if message.get("tool_calls") and messages and messages[-1]["role"] == "assistant":
            # A function_call after the assistant's text (or another call) belongs to that message.
            earlier = messages[-1]
            earlier["tool_calls"] = [*earlier.get("tool_calls", []), *message["tool_calls"]]
        else:
            messages.append(message)
    return messages


def function_results(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The function_call_output items, as (call_id, output)."""
    return [{"call_id": m["tool_call_id"], "output": m["content"]} for m in messages if m["role"] == "tool"]


def _message_of(param: str, item: object) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        raise invalid(param, "An input item is an object.")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return _message(param, item)
    if kind == "function_call":
        return _call(param, item)
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": _string(param, item, "call_id"), "content": _output(param, item)}
    if kind == "reasoning":
        return None  # the model's own reasoning, sent back: not its prompt
    message = f"An input item is a message, function_call, function_call_output or reasoning, not {kind!r}."
    raise invalid(f"{param}.type", message, UNSUPPORTED if isinstance(kind, str) else "invalid_request")


def _message(param: str, item: dict) -> dict[str, Any]:
    role = ROLES.get(str(item.get("role")))
    if role is None:
        raise invalid(f"{param}.role", f"A message's role is one of {', '.join(ROLES)}.")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid(f"{param}.content", "A message's content is a string or a list of content parts.")
    return {"role": role, "content": [_part(f"{param}.content[{n}]", part) for n, part in enumerate(content)]}


def _part(param: str, part: object) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(part, dict) or kind not in (*TEXT_PARTS, "input_image"):
        message = f"A content part is input_text, output_text, refusal or input_image (by URL), not {kind!r}."
        raise invalid(f"{param}.type", message, UNSUPPORTED if isinstance(kind, str) else "invalid_request")
    if kind == "input_image":
        image = {"url": _string(param, part, "image_url")}
        if isinstance(part.get("detail"), str) and part["detail"] != "auto":
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    field = TEXT_PARTS[kind]
    return {"type": field, field: _string(param, part, "text" if field == "text" else "refusal")}


def _call(param: str, item: dict) -> dict[str, Any]:
    function = {"name": _string(param, item, "name"), "arguments": _string(param, item, "arguments")}
    call = {"id": _string(param, item, "call_id"), "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _output(param: str, item: dict) -> str:
    """A function's output: a string, or its text parts joined."""
    output = item.get("output")
    if isinstance(output, list):
        return "".join(_part(f"{param}.output[{n}]", part).get("text", "") for n, part in enumerate(output))
    return _string(param, item, "output")


def _string(param: str, item: dict, name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise invalid(f"{param}.{name}", f"{name} is a string.")
    return value
