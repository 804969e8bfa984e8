"""What a Responses API request (`POST v1/responses`) carries, read, checked
and made a chat completion request of: the chat door's prompt and options
(openai_request.py checks them once made), so both doors send the model
the same thing. A 400 in OpenAI's error shape names the parameter at fault.

`input` (a string, or messages and items) becomes chat messages:
`instructions` first as a system message, a developer message as a system
one, `input_text`/`output_text` parts as text, `input_image` as an image
part, a `function_call` as an assistant message's tool call, and a
`function_call_output` as a `tool` message; `reasoning` items a client
sends back are dropped (the model's own reasoning is not its prompt).
Function tools take the chat shape; the door runs no tools of its own, so
a built-in tool is refused, as is anything else that would change what the
answer means (`background`, a stored `prompt`, OpenAI's `conversation`).
"""

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from ..exceptions import ApiError
from ..instructions import PARAMETERS, parameters_problem, response_format_problem
from ..wire.openai_responses import RESPONSE_PREFIX
from .openai_request import UNSUPPORTED, checked_chat, invalid, request_json
from .responses_input import chat_messages, function_results

# The Responses API's name of each parameter the chat door passes on, and its chat name.
RENAMED = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
}
CHAT_NAMES = {chat: name for name, chat in RENAMED.items()}
# Parameters that would change what the answer means, which the door cannot do: refused, never dropped.
REFUSED = {
    "background": "The door answers while the client waits: leave background out.",
    "conversation": "Name a chatstream conversation with X-Chatstream-Conversation, or use previous_response_id.",
    "prompt": "The door has no stored prompts: send instructions and input.",
    "top_logprobs": "The door does not return log probabilities: leave top_logprobs out.",
}
# What a response says back of its request (OpenAI's responses do).
ECHOED = (
    *("instructions", "metadata", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p"),
    *("max_output_tokens", "previous_response_id", "reasoning", "text", "store"),
)


@dataclass(frozen=True)
class ResponsesCall:
    """A Responses request, checked: the chat request it is, and what only
    the Responses door reads."""

    chat: dict[str, Any]  # model, messages, stream and the options passed on, as the chat door takes them
    previous_id: uuid.UUID | None = None  # previous_response_id's turn
    results: list[dict[str, str]] = field(default_factory=list)  # function_call_output items: call_id, output
    echo: dict[str, Any] = field(default_factory=dict)


def responses_request(request: HttpRequest) -> ResponsesCall:
    body = request_json(request)
    if not isinstance(body, dict):
        raise invalid("body", "The body is a JSON object.")
    _refuse_unsupported(body)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid("instructions", "instructions is a string.")
    messages = chat_messages(body.get("input"))
    options = _options(body)
    chat = {"model": body.get("model"), "stream": bool(body.get("stream")), **options}
    chat["messages"] = [{"role": "system", "content": instructions}, *messages] if instructions else messages
    previous = body.get("previous_response_id")
    return ResponsesCall(
        chat=_checked(chat),
        previous_id=None if previous is None else turn_id_of(previous, "previous_response_id"),
        results=function_results(messages),
        echo={name: body[name] for name in ECHOED if body.get(name) is not None},
    )


def _checked(chat: dict[str, Any]) -> dict[str, Any]:
    """The chat door's checks, the field at fault named as this request
    names it (a message's as `input`: instructions and merged calls move
    the chat messages' numbers)."""
    try:
        return checked_chat(chat)
    except ApiError as error:
        param = error.details.get("param")
        if isinstance(param, str):
            param = re.sub(r"^tools\[(\d+)\]\.function", r"tools[\1]", param)
            error.details["param"] = CHAT_NAMES.get(param, re.sub(r"^messages\b.*", "input", param))
        raise


def turn_id_of(given: object, param: str | None = None) -> uuid.UUID:
    """The turn a `resp_<hex>` id names; 404 for one the door never made."""
    if isinstance(given, str) and given.startswith(RESPONSE_PREFIX):
        try:
            return uuid.UUID(hex=given[len(RESPONSE_PREFIX) :])
        except ValueError:
            pass
    raise not_found(given, param)


def not_found(given: object, param: str | None = None) -> ApiError:
    """OpenAI's 404 for a response id that names no response of this user's."""
    message = f"Response with id '{given}' not found."
    return ApiError(404, "not_found", message, details={"type": "invalid_request_error", "param": param})


def _refuse_unsupported(body: dict) -> None:
    for name, why in REFUSED.items():
        if body.get(name):
            raise invalid(name, why, UNSUPPORTED)


# --- options ------------------------------------------------------------------------------


def _options(body: dict) -> dict[str, Any]:
    """The chat door's options: sampling and bounds, reasoning effort, tools, the format."""
    options = {chat: body[name] for name, chat in RENAMED.items() if body.get(name) is not None}
    for name, chat in RENAMED.items():
        problem = parameters_problem({chat: options[chat]}) if chat in options and chat in PARAMETERS else None
        if problem:
            raise invalid(name, problem[1].replace(chat, name))
    effort = _reasoning_effort(body.get("reasoning"))
    if effort is not None:
        options["reasoning_effort"] = effort
    if body.get("tools") is not None:
        options["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        options["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        options["response_format"] = response_format
    return options


def _reasoning_effort(reasoning: object) -> str | None:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise invalid("reasoning", 'reasoning is {"effort": ...}.')
    effort = reasoning.get("effort")
    problem = parameters_problem({"reasoning_effort": effort}) if effort is not None else None
    if problem:
        raise invalid("reasoning.effort", problem[1].replace("reasoning_effort", "reasoning.effort"))
    return effort


def _tools(tools: object) -> list[Any]:
    """Function tools in the chat shape; a built-in tool is refused (the
    door runs none); the chat door then checks each function."""
    if not isinstance(tools, list):
        raise invalid("tools", "tools is a list of function tools.")
    chat = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            message = f"The door passes on function tools only, and runs no {kind!r} tool of its own."
            raise invalid(f"tools[{index}].type", message, UNSUPPORTED if isinstance(kind, str) else "invalid_request")
        function = {k: v for k, v in tool.items() if k != "type" and v is not None}
        chat.append({"type": "function", "function": function})
    return chat


def _tool_choice(choice: object) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise invalid("tool_choice", 'tool_choice is "auto", "none", "required" or {"type": "function", "name": ...}.')


def _response_format(text: object) -> dict[str, Any] | None:
    """`text.format` as the chat door's (and a conversation's) response_format."""
    given = text.get("format") if isinstance(text, dict) else None
    if text is not None and not isinstance(text, dict):
        raise invalid("text", 'text is {"format": ...}.')
    if given is None or (isinstance(given, dict) and given.get("type") == "text"):
        return None
    if isinstance(given, dict) and given.get("type") == "json_schema":
        spec = {k: given[k] for k in ("name", "schema", "strict", "description") if given.get(k) is not None}
        given = {"type": "json_schema", "json_schema": spec}
    problem = response_format_problem(given)
    if problem:
        raise invalid("text.format", problem.replace("response_format.json_schema", "text.format"))
    return given  # type: ignore[return-value]
