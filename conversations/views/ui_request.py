"""What the AI SDK's `useChat` sends to `api/ui/chat`, read and checked:
`{"id", "messages", "trigger", "messageId"}` (AI SDK 5 and later), and any
fields of the transport's own `body` beside them (`model`).

chatstream keeps the conversation itself, so of `messages` only the last
user message is read: its text parts are the new message, its file parts
the files it sends. A file part's `url` is a file uploaded with `POST
api/files` (its content URL: the way to send files without resending them
in every request's history) or a `data:` URL, stored as an upload is.
"""

import base64
import binascii
import re
import uuid
from dataclasses import dataclass

from ..conf import conf
from ..exceptions import ApiError
from .bodies import checked_content

SUBMIT, REGENERATE = "submit-message", "regenerate-message"
# useChat's ids are short random strings (nanoid's alphabet); UUIDs fit too.
CHAT_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# A file uploaded with POST api/files, named by its content URL, wherever the app is mounted.
_UPLOADED = re.compile(r"/files/([0-9a-fA-F-]{36})/content/?$")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(.*)", re.DOTALL)


@dataclass(frozen=True)
class DataFile:
    """A file part sent inline, decoded."""

    name: str
    content: bytes


@dataclass(frozen=True)
class ChatRequest:
    chat_id: str
    trigger: str
    message_id: str  # regenerate: the answer to make again (its id: a turn id), if the client knows it
    text: str = ""
    uploaded: tuple[uuid.UUID, ...] = ()  # files named by their content URL
    inline: tuple[DataFile, ...] = ()  # files sent as data: URLs


def chat_request(body: dict) -> ChatRequest:
    chat_id, trigger = checked_chat_id(body.get("id")), body.get("trigger", SUBMIT)
    message_id = body.get("messageId") or ""
    if not isinstance(message_id, str):
        raise ApiError(400, "invalid_message_id", '"messageId" must be a string.')
    if trigger == REGENERATE:
        return ChatRequest(chat_id, trigger, message_id)
    if trigger != SUBMIT:
        raise ApiError(400, "invalid_trigger", f'"trigger" must be "{SUBMIT}" or "{REGENERATE}".')
    parts = _parts(_last_user_message(body.get("messages")))
    uploaded, inline = _files([part for part in parts if part.get("type") == "file"])
    text = "".join(part.get("text", "") for part in parts if part.get("type") == "text")
    if not (text.strip() or uploaded or inline):
        raise ApiError(400, "invalid_content", "The last user message has no text and no files.")
    return ChatRequest(chat_id, trigger, message_id, checked_content(text, with_files=True), uploaded, inline)


def checked_chat_id(value: object) -> str:
    if not isinstance(value, str) or not CHAT_ID.fullmatch(value):
        raise ApiError(400, "invalid_chat_id", 'The chat "id" must be 1 to 200 letters, digits, "-" or "_".')
    return value


def _last_user_message(messages: object) -> dict:
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise ApiError(400, "invalid_messages", '"messages" must be a list of UI messages, the new one last.')
    if messages[-1].get("role") != "user":
        raise ApiError(400, "invalid_messages", 'The last of "messages" must be the user\'s new message.')
    return messages[-1]


def _parts(message: dict) -> list[dict]:
    parts = message.get("parts")
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise ApiError(400, "invalid_messages", 'A UI message\'s "parts" must be a list of objects.')
    if any(part.get("type") == "text" and not isinstance(part.get("text"), str) for part in parts):
        raise ApiError(400, "invalid_messages", 'A text part\'s "text" must be a string.')
    return parts


def _files(parts: list[dict]) -> tuple[tuple[uuid.UUID, ...], tuple[DataFile, ...]]:
    uploaded: list[uuid.UUID] = []
    inline: list[DataFile] = []
    for part in parts:
        url = part.get("url")
        if not isinstance(url, str):
            raise ApiError(400, "invalid_files", 'A file part needs a "url".')
        if found := _UPLOADED.search(url.split("?", 1)[0]):
            uploaded.append(_file_id(found.group(1)))
        elif url.startswith("data:"):
            inline.append(DataFile(_file_name(part.get("filename")), _decoded(url)))
        else:
            raise ApiError(
                400, "unsupported_file_url", "A file part's url must be a data: URL or a file's api/files content URL."
            )
    limit = conf.CHATSTREAM_MAX_FILES_PER_MESSAGE
    if len(uploaded) + len(inline) > limit:
        raise ApiError(400, "too_many_files", f"A message may send {limit} files at most; this one has {len(parts)}.")
    return tuple(dict.fromkeys(uploaded)), tuple(inline)


def _file_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ApiError(400, "invalid_files", f"{text!r} is not a file id.") from None


def _file_name(given: object) -> str:
    return given if isinstance(given, str) and given else "file"


def _decoded(url: str) -> bytes:
    found = _DATA_URL.fullmatch(url)
    if found is None:
        raise ApiError(400, "invalid_files", "A data: URL file part must be base64 (data:<type>;base64,...).")
    try:
        return base64.b64decode(found.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_files", "A data: URL file part is not valid base64.") from None
