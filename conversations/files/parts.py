"""A message's files in the model's prompt.

A message that sends files is built (storage/sql.py, memory/prompt.py) with
a placeholder part for each, `{"type": "chatstream_file", "file": {...}}`:
the prompt's budget is worked out on those, from what each file is (an
image costs IMAGE_TOKENS; a document its text's length). Only then, outside
the transaction that built it, `resolve` reads what goes to the model from
storage: an image as an `image_url` part (a data: URL, or the storage's URL
with CHATSTREAM_FILE_URLS=storage), a PDF's or a text file's text as a text
part headed by its name. A heading names each file, so a model (and the
demo, which describes them) knows what it was sent.
"""

import base64
import codecs
from typing import Any

from ..conf import conf
from ..providers.base import Message
from ..providers.estimates import text_tokens, tokens_for_chars
from . import storage
from .headings import heading

FILE_PART = "chatstream_file"
# What an image is taken to cost a prompt: OpenAI counts 85 tokens plus 170
# for each 512-pixel tile, about this for a photo; other servers are close.
IMAGE_TOKENS = 1000
CUT_NOTE = "[… cut here: {sent} of {chars} characters fit the prompt]"


def with_files(message: Message, files: list[dict[str, Any]]) -> Message:
    """A user's message with its files (Turn.files) as placeholder parts."""
    text = [{"type": "text", "text": message["content"]}] if message["content"] else []
    placeholders = [{"type": FILE_PART, "file": file, "chars": file.get("text_chars", 0)} for file in files]
    return {**message, "content": text + placeholders}


def placeholders(message: Message) -> list[dict[str, Any]]:
    return [part for part in _list_of(message) if part.get("type") == FILE_PART]


def client_sends_images(messages: list[Message]) -> bool:
    """Does a client's own prompt (the OpenAI door) have image parts?"""
    return any(part.get("type") == "image_url" for message in messages for part in _list_of(message))


def _list_of(message: Message) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def message_tokens(message: Message) -> int:
    """A message's estimated size, its files' at what they will send."""
    content = message.get("content")
    if not isinstance(content, list):
        return text_tokens(content or "")
    return sum(_part_tokens(part) for part in content)


def _part_tokens(part: dict[str, Any]) -> int:
    if part.get("type") == "text":
        return text_tokens(part["text"])
    if part.get("type") == FILE_PART:
        if part.get("note"):
            return text_tokens(heading(part["file"])) + 8
        return IMAGE_TOKENS if part["file"]["kind"] == "image" else tokens_for_chars(part["chars"]) + 16
    return IMAGE_TOKENS  # an image_url part a client sent (the OpenAI door)


def fit_documents(message: Message, room: int) -> tuple[Message, list[dict[str, Any]]]:
    """The new message with its documents' text cut, in order, to what
    `room` tokens hold (it is always sent: a message alone over the budget
    still goes, its documents cut); the cuts, for the turn."""
    files = placeholders(message)
    if not files or message_tokens(message) <= room:
        return message, []
    documents = [part for part in files if part["file"]["kind"] != "image"]
    left_chars = max(0, room - message_tokens(_sized(message, lambda part: 0))) * 4
    sent: dict[str, int] = {}
    cuts = []
    for part in documents:
        file_id = part["file"]["id"]
        sent[file_id] = min(part["chars"], left_chars)
        left_chars -= sent[file_id]
        if sent[file_id] < part["chars"]:
            cuts.append(
                {"id": file_id, "name": part["file"]["name"], "chars": part["chars"], "chars_sent": sent[file_id]}
            )
    return _sized(message, lambda part: sent[part["file"]["id"]]), cuts


def _sized(message: Message, chars_of) -> Message:
    """The message with each document's text to send set by `chars_of`."""
    return _mapped(message, lambda part: part if part["file"]["kind"] == "image" else {**part, "chars": chars_of(part)})


def earlier(message: Message) -> Message:
    """An earlier turn's message: its images become a note (unless
    CHATSTREAM_IMAGES_IN_HISTORY): an image goes with its own message."""
    return message if conf.CHATSTREAM_IMAGES_IN_HISTORY else images_noted(message)


def images_noted(message: Message) -> Message:
    """The message with a note for each image it sent, not the image."""
    return _noted(message, lambda part: part["file"]["kind"] == "image") if placeholders(message) else message


def without_files(message: Message) -> Message:
    """An earlier message whose files do not fit any more: a note for each."""
    return _noted(message, lambda part: True) if placeholders(message) else message


def _noted(message: Message, which) -> Message:
    return _mapped(message, lambda part: {**part, "note": True} if which(part) else part)


def located(messages: list[Message], where: dict[str, tuple[str, str]]) -> list[Message]:
    """The placeholders told where each file's bytes and text are (the
    rows' `path`, `text_path`), while the prompt's transaction has them."""
    return [_mapped(message, lambda part: {**part, "where": where.get(part["file"]["id"])}) for message in messages]


def resolve(messages: list[Message]) -> list[Message]:
    """The prompt as the model takes it: each placeholder replaced by its
    file, read from storage (blocking: run on a thread)."""
    return [_expanded(message) for message in messages]


def _mapped(message: Message, change) -> Message:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    return {**message, "content": [change(part) if part.get("type") == FILE_PART else part for part in content]}


def _expanded(message: Message) -> Message:
    content = message.get("content")
    if not isinstance(content, list) or not placeholders(message):
        return message
    parts: list[dict[str, Any]] = []
    for part in content:
        parts += _file_parts(part) if part.get("type") == FILE_PART else [part]
    return {**message, "content": parts}


def _file_parts(part: dict[str, Any]) -> list[dict[str, Any]]:
    file, where = part["file"], part.get("where")
    if where is None:
        return [{"type": "text", "text": f"{heading(file)}\n[deleted since it was sent]"}]
    if part.get("note"):
        return [{"type": "text", "text": f"{heading(file)}\n[sent earlier in the conversation; not repeated here]"}]
    try:
        return _read(part, *where)
    except OSError:  # its bytes are gone from the storage, or it cannot be reached
        return [{"type": "text", "text": f"{heading(file)}\n[could not be read from the storage]"}]


def _read(part: dict[str, Any], path: str, text_path: str) -> list[dict[str, Any]]:
    file = part["file"]
    if file["kind"] == "image":
        return [
            {"type": "text", "text": heading(file)},
            {"type": "image_url", "image_url": {"url": _image_url(file, path)}},
        ]
    text = _text(text_path or path, part["chars"])
    if part["chars"] < file.get("text_chars", 0):
        text += "\n" + CUT_NOTE.format(sent=part["chars"], chars=file["text_chars"])
    return [{"type": "text", "text": f"{heading(file)}\n{text}"}]


def _image_url(file: dict[str, Any], path: str) -> str:
    files = storage.file_storage()
    if conf.CHATSTREAM_FILE_URLS == "storage":
        return files.url(path)
    with files.open(path, "rb") as opened:
        return f"data:{file['content_type']};base64,{base64.b64encode(opened.read()).decode()}"


def _text(path: str, chars: int) -> str:
    """The first `chars` characters of a stored text (UTF-8; what does not
    decode is replaced), read no further than they need."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = ""
    with storage.file_storage().open(path, "rb") as opened:
        while len(text) < chars and (chunk := opened.read(max(4096, (chars - len(text)) * 4))):
            text += decoder.decode(chunk)
    return text[:chars].replace("\x00", "")
