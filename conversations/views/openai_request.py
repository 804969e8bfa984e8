"""What a chat completion request to the OpenAI door carries, read and
checked before anything is saved or sent on: a 400 in OpenAI's error shape
(`type: invalid_request_error`, the `param` at fault) for anything wrong.

Every message is held to the API's message limit, and the whole prompt to
the model's prompt budget (answering.start_turn, where the model is known);
the output bound is capped by the catalogue (ModelEntry.bounded). What the
door cannot honour (`n` above 1, `logprobs`) is refused, not dropped.
"""

import re
from typing import Any

import orjson
from django.http import HttpRequest

from ..conf import conf
from ..exceptions import ApiError
from ..instructions import REASONING_EFFORTS

# What of a chat completion request goes on to the model, checked as below.
PASSED_ON = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "reasoning_effort",
)
# OpenAI's content part types; a text-bearing one must carry a string.
PART_TEXT = {"text": "text", "refusal": "refusal", "image_url": None, "input_audio": None, "file": None}
IMAGE_URL = re.compile(r"https?://\S+$|data:image/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/=\s]+$")
MAX_TOOLS = 128  # as OpenAI allows
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as OpenAI requires
FUNCTION_FIELDS = frozenset({"name", "description", "parameters", "strict"})
UNSUPPORTED = "unsupported_parameter"  # OpenAI's code for a parameter a model does not take


def invalid(param: str, message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message, details={"type": "invalid_request_error", "param": param})


def request_json(request: HttpRequest) -> Any:
    try:
        return orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None


def chat_request(request: HttpRequest) -> dict[str, Any]:
    """The body, its messages, model and passed-on options checked."""
    return checked_chat(request_json(request))


def checked_chat(body: Any) -> dict[str, Any]:
    """A chat completion request's messages, model and passed-on options
    checked (the Responses door's too, once made one: responses_request.py)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "invalid_messages", "Send `messages`: a non-empty list of {role, content}.")
    if not isinstance(body.get("model"), str):
        raise ApiError(400, "invalid_model", "Send `model`: a name from GET v1/models.")
    for index, message in enumerate(messages):
        _check_message(index, message)
    _check_options(body)
    return body


def last_user_text(messages: list[dict]) -> str:
    """The turn saved as the user's: their last message's text, with an
    `[image]` for each image it sends (the image goes on to the model; the
    door keeps no copy)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = "\n".join(filter(None, [text_of(message), *["[image]"] * _images_in(message)]))
            if content.strip() and "\x00" not in content:
                return content
    raise ApiError(400, "invalid_messages", "`messages` needs a user message with text or an image.")


def _images_in(message: dict) -> int:
    content = message.get("content")
    return sum(part["type"] == "image_url" for part in content) if isinstance(content, list) else 0


def text_of(message: dict) -> str:
    """A checked message's text: its string content, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(part[PART_TEXT[part["type"]]] for part in content if PART_TEXT[part["type"]])
    return content if isinstance(content, str) else ""


# --- messages ---------------------------------------------------------------------------


def _check_message(index: int, message: dict) -> None:
    content = message.get("content")
    if isinstance(content, list):
        for number, part in enumerate(content):
            _check_part(f"messages[{index}].content[{number}]", part)
    elif content is not None and not isinstance(content, str):
        raise invalid(f"messages[{index}].content", "A message's content is a string or a list of content parts.")
    length, limit = len(text_of(message)), conf.CHATSTREAM_MAX_MESSAGE_CHARS
    if length > limit:
        raise invalid(
            f"messages[{index}]",
            f"messages[{index}] has {length} characters; the limit is {limit}.",
            code="content_too_long",
        )


def _check_part(param: str, part: object) -> None:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str) or part["type"] not in PART_TEXT:
        kind = part.get("type") if isinstance(part, dict) else None
        raise invalid(f"{param}.type", f"A content part's type is one of {', '.join(PART_TEXT)}, not {kind!r}.")
    field = PART_TEXT[part["type"]]
    if field and not isinstance(part.get(field), str):
        raise invalid(f"{param}.{field}", f"A {part['type']} part's {field!r} must be a string.")
    if part["type"] == "image_url":
        _check_image(param, part.get("image_url"))


def _check_image(param: str, image: object) -> None:
    """An image part names its image by an http(s) URL (the model server
    fetches it) or carries it as a base64 data: URL of a type models read."""
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not IMAGE_URL.match(url):
        raise invalid(
            f"{param}.image_url.url",
            "An image_url part's url is an http(s) URL or a data:image/(png|jpeg|webp|gif);base64, URL.",
        )


# --- options ----------------------------------------------------------------------------


def _check_options(body: dict) -> None:
    _refuse_unsupported(body)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value < 1):
            raise invalid(name, f"{name} must be a whole number of at least 1.")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise invalid("reasoning_effort", f"reasoning_effort is one of {', '.join(REASONING_EFFORTS)}.")
    if body.get("tools") is not None:
        _check_tools(body["tools"])


def _refuse_unsupported(body: dict) -> None:
    """What the door cannot do is refused, never dropped: one choice per
    answer (a turn is one answer), and no log probabilities (the stream,
    the turn and the providers carry none)."""
    if body.get("n") not in (None, 1):
        raise invalid("n", "The door answers one choice per call: send n: 1 or leave n out.", UNSUPPORTED)
    for name in ("logprobs", "top_logprobs"):
        if body.get(name):
            raise invalid(name, f"The door does not return log probabilities: leave {name} out.", UNSUPPORTED)


def _check_tools(tools: object) -> None:
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise invalid("tools", f"tools is a list of at most {MAX_TOOLS} function definitions.")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or function.keys() - FUNCTION_FIELDS:
            raise invalid(
                f"tools[{index}]", 'A tool is {"type": "function", "function": {"name", "description", "parameters"}}.'
            )
        if not isinstance(function.get("name"), str) or not FUNCTION_NAME.fullmatch(function["name"]):
            raise invalid(f"tools[{index}].function.name", "A function's name is 1-64 letters, digits, _ or -.")
        if not isinstance(function.get("parameters", {}), dict):
            raise invalid(f"tools[{index}].function.parameters", "A function's parameters is a JSON Schema object.")
        if len(orjson.dumps(tool)) > conf.CHATSTREAM_MAX_MESSAGE_CHARS:
            raise invalid(
                f"tools[{index}]",
                f"A tool's definition is held to the message limit, {conf.CHATSTREAM_MAX_MESSAGE_CHARS}.",
            )
