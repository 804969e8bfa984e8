"""An OpenAI-compatible door: `POST v1/chat/completions` (streamed and not)
and `GET v1/models` (and `v1/models/<id>`), so any OpenAI SDK client talks through chatstream with
a chatstream API key as its `api_key`, and its turns are saved, limited,
budgeted, priced, reviewable in the admin and resumable like any other.

The client's `messages` are the whole prompt (chatstream's history is not
added, nor its memory unless `X-Chatstream-Memory: on` asks); its last user
message is the turn saved, unless the call carries on an earlier one (an
SDK's retry, a step of the client's tool loop: openai_followups.py). A
conversation is named by `X-Chatstream-Conversation`, or made per call; the
response names both it and the answer's turn (`X-Chatstream-Turn`), so a
client can resume with `GET api/turns/<id>/events`. Streamed chunks are
written by wire/openai_chunks.py.
"""

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from .. import answering, services
from ..answering import Version
from ..catalogue import ModelEntry, catalogue, chosen_model
from ..exceptions import ApiError
from ..live import LiveAnswer
from ..models import Conversation, Turn
from ..storage.threads import run_db
from ..wire.openai_chunks import FINISH_REASONS, ChunkWire, counted_here, openai_usage
from . import openai_followups as followups
from .bodies import idempotency_key
from .errors import api_view, parse_id
from .openai_request import PASSED_ON, chat_request, last_user_text
from .streaming import stream_response, trace_id_for
from .whole import ERROR_STATUS, finished_turn

CONVERSATION_HEADER = "X-Chatstream-Conversation"
MEMORY_HEADER = "X-Chatstream-Memory"  # "on": the conversation's memory goes with the client's prompt


@api_view("GET")
async def models(request: HttpRequest, user) -> HttpResponse:
    data = [_model_object(entry) for entry in catalogue().values()]
    return JsonResponse({"object": "list", "data": data})


@api_view("GET")
async def model(request: HttpRequest, user, model_id: str) -> HttpResponse:
    """One model of the catalogue; an unknown one is 404 as OpenAI says it."""
    entry = catalogue().get(model_id)
    if entry is None:
        message = f"The model `{model_id}` does not exist or you do not have access to it."
        raise ApiError(404, "model_not_found", message, details={"type": "invalid_request_error", "param": None})
    return JsonResponse(_model_object(entry))


def _model_object(entry: ModelEntry) -> dict[str, Any]:
    return {"id": entry.name, "object": "model", "created": 0, "owned_by": entry.provider}


@api_view("POST")
async def chat_completions(request: HttpRequest, user) -> HttpResponseBase:
    received_at = time.monotonic()
    body = chat_request(request)
    question = last_user_text(body["messages"])
    answer, conversation_id = await door_answer(
        request, user, body["messages"], received_at, lambda carried: door_message(request, body, question, carried)
    )
    names = {"model": body["model"], "conversation": conversation_id}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _streamed(answer, names, include_usage)
    return await _whole(answer, names)


async def door_answer(
    request: HttpRequest,
    user,
    messages: list[dict],
    received_at: float,
    message_for: Callable[[Version | str], answering.NewMessage],
    conversation_id: uuid.UUID | None = None,
) -> tuple[LiveAnswer | Turn, uuid.UUID]:
    """A door call's answer, and its conversation (this one, else the one
    the call names or makes): an earlier attempt's (a retry's, complete),
    else a new one to the message `message_for` makes of what the call
    carries on (openai_followups.py)."""
    key = idempotency_key(request)
    # The question keeps the client's key, or one of the request's, for its retries to find.
    own_key = key or followups.request_key(request, user)
    if conversation_id is None:
        conversation_id = await _conversation(request, user, key, own_key, messages)
    carried = await followups.find(request, user, conversation_id, messages, own_key)
    if isinstance(carried, Turn):
        return carried, conversation_id  # a retry's earlier attempt's answer, complete
    return await _send(request, user, conversation_id, message_for(carried), received_at), conversation_id


def door_message(request: HttpRequest, body: dict, question: str, carried: Version | str) -> answering.NewMessage:
    """The client's prompt as the message to answer: a new version of the
    answer it carries on, or a new question with its key (openai_followups.py)."""
    version = carried if isinstance(carried, Version) else None
    return answering.NewMessage(
        content=question,
        idempotency_key="" if isinstance(carried, Version) else carried,  # a key names one saved question
        model_name=chosen_model(body["model"], auto=True),
        prompt=body["messages"],
        with_memory=request.headers.get(MEMORY_HEADER, "").lower() in ("on", "true", "1"),
        request_options={name: body[name] for name in PASSED_ON if name in body},
        version=version,
    )


async def _send(
    request: HttpRequest, user, conversation_id: uuid.UUID, message: answering.NewMessage, received_at: float
) -> LiveAnswer | Turn:
    try:
        return await answering.send_message(
            owner=user,
            conversation_id=conversation_id,
            message=message,
            trace_id=trace_id_for(request),
            received_at=received_at,
        )
    except Conversation.DoesNotExist:
        raise ApiError(404, "conversation_not_found", "No conversation with that id belongs to you.") from None


async def _conversation(request: HttpRequest, user, key: str, own_key: str, messages: list[dict]) -> uuid.UUID:
    """The header's conversation; else, for an Idempotency-Key, the one
    conversation that key names for this user (made by its first call, so a
    repeat finds the first call's message and gets its answer); else, for an
    SDK's retry, the one its first attempt made, and for a step of the
    client's tool loop, the one whose answer asked for the tool
    (openai_followups.py); else a new one."""
    given = request.headers.get(CONVERSATION_HEADER)
    if given:
        return parse_id(given)
    if key:
        return (await run_db(services.conversation_for_key, owner=user, key=key)).pk
    if followups.is_retry(request):
        made = await run_db(followups.conversation_of_request, owner=user, key=own_key)
        if made is not None:
            return made
    step_of = await run_db(followups.conversation_of_tool_step, owner=user, messages=messages)
    if step_of is not None:
        return step_of
    return (await run_db(services.create_conversation, owner=user)).pk


# --- streamed ------------------------------------------------------------------------


def _streamed(answer: LiveAnswer | Turn, names: dict, include_usage: bool) -> HttpResponseBase:
    """The answer as chunks; a repeated request (its Idempotency-Key) gets
    the first one's answer, saved or still streaming."""
    turn_id = answer.pk if isinstance(answer, Turn) else answer.turn_id
    wire = ChunkWire(turn_id, names["model"], include_usage)
    return with_headers(stream_response(answer, wire), answer, names)


def with_headers(response: HttpResponseBase, answer: LiveAnswer | Turn, names: dict) -> HttpResponseBase:
    response["X-Request-ID"] = answer.trace_id
    response[CONVERSATION_HEADER] = str(names["conversation"])
    response["X-Chatstream-Turn"] = str(answer.pk if isinstance(answer, Turn) else answer.turn_id)
    return response


# --- one JSON object ------------------------------------------------------------------


def failed_response(turn: Turn, names: dict) -> HttpResponseBase:
    """A failed answer, for a client that waited for the whole of it: an
    error the SDKs raise, with the status of what went wrong."""
    error = {"code": turn.error_code, "message": turn.error_detail, "type": "upstream_error"}
    return with_headers(JsonResponse({"error": error}, status=ERROR_STATUS.get(turn.error_code, 502)), turn, names)


async def _whole(answer: LiveAnswer | Turn, names: dict) -> HttpResponseBase:
    turn = answer if isinstance(answer, Turn) else await finished_turn(answer)
    if turn.status == Turn.Status.FAILED:
        return failed_response(turn, names)
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    if turn.reasoning:
        message["reasoning_content"] = turn.reasoning
    if turn.tool_calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in turn.tool_calls
        ]
    if turn.refusal:
        message["refusal"] = turn.refusal
    completion = {
        "id": f"chatcmpl-{turn.pk}",
        "object": "chat.completion",
        "created": int(turn.created_at.timestamp()),
        "model": names["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(turn.finish_reason, turn.finish_reason),
            }
        ],
        "usage": openai_usage(
            turn.tokens_in,
            turn.tokens_out,
            turn.tokens_cached,
            turn.tokens_reasoning,
            counted_here(turn.tokens_estimated, turn.usage_source),
        ),
    }
    return with_headers(JsonResponse(completion), turn, names)
