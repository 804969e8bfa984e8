"""What the API's requests carry, read and checked: a 400 with its own code
for anything wrong."""

import uuid

import orjson
from django.http import HttpRequest

from ..conf import conf
from ..exceptions import ApiError
from ..queued import WHILE_ANSWERING


def json_body(request: HttpRequest) -> dict:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


def message_content(request: HttpRequest, *, with_files: bool = False) -> str:
    """The message's text: not blank, unless it sends files."""
    return checked_content(json_body(request).get("content", "" if with_files else None), with_files=with_files)


def checked_content(content: object, *, with_files: bool = False) -> str:
    if not isinstance(content, str) or not (content.strip() or with_files):
        raise ApiError(400, "invalid_content", 'Send {"content": "<your message>"} with a non-empty string.')
    if "\x00" in content:  # PostgreSQL cannot store it; no real message has one
        raise ApiError(400, "invalid_content", "The message contains a NUL character.")
    if len(content) > conf.CHATSTREAM_MAX_MESSAGE_CHARS:
        raise ApiError(
            400,
            "content_too_long",
            f"The message has {len(content)} characters; the limit is {conf.CHATSTREAM_MAX_MESSAGE_CHARS}.",
        )
    return content


def message_files(request: HttpRequest) -> tuple[uuid.UUID, ...] | None:
    """The ids of the files a message sends (`"files"`), each once, in
    order; None when the body does not say."""
    given = json_body(request).get("files")
    if given is None:
        return None
    if not isinstance(given, list):
        raise ApiError(400, "invalid_files", '"files" must be a list of file ids (POST api/files).')
    try:
        ids = tuple(dict.fromkeys(uuid.UUID(value) for value in given))
    except (TypeError, ValueError, AttributeError):
        raise ApiError(400, "invalid_files", '"files" must be a list of file ids (POST api/files).') from None
    limit = conf.CHATSTREAM_MAX_FILES_PER_MESSAGE
    if len(ids) > limit:
        raise ApiError(400, "too_many_files", f"A message may send {limit} files at most; this one names {len(ids)}.")
    return ids


def idempotency_key(request: HttpRequest) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if "\x00" in key:
        raise ApiError(400, "invalid_idempotency_key", "The Idempotency-Key header contains a NUL character.")
    if len(key) > 200:
        raise ApiError(400, "invalid_idempotency_key", "The Idempotency-Key header is longer than 200 characters.")
    return key


def while_answering(request: HttpRequest) -> str:
    """What to do with the message if an answer is in progress in its
    conversation (queued/): the body's `while_answering`, else the setting."""
    given = json_body(request).get("while_answering", conf.CHATSTREAM_WHILE_ANSWERING)
    if given not in WHILE_ANSWERING:
        choices = ", ".join(f'"{choice}"' for choice in WHILE_ANSWERING)
        raise ApiError(400, "invalid_while_answering", f"while_answering must be one of {choices}.")
    return given
