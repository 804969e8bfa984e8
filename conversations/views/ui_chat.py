"""The AI SDK's door: `useChat`'s default transport (and assistant-ui's)
speaking to chatstream (docs/frontends.md).

    POST api/ui/chat                 a message (or a regeneration), answered
                                     as a UI message stream (wire/ui_messages.py)
    GET  api/ui/chat/<id>/stream     the answer still streaming in that chat,
                                     from its start, or 204: `resume: true`
    GET  api/ui/chat/<id>/messages   the chat's saved messages (the branch it
                                     shows), as useChat's `messages` start

The chat's `id` is the front end's own; the conversation keeps it beside its
own id (Conversation.client_id) and is made on first use. The answer is
chatstream's like any other: limits, budgets, the saved turn, cancel when
the client aborts, resume on any process.
"""

import time
import uuid

from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import reverse

from .. import answering, selectors, services
from ..answering import NewMessage, Version
from ..catalogue import chosen_model
from ..exceptions import ApiError
from ..live import LiveAnswer, live_answers
from ..models import Conversation, Turn
from ..storage.threads import run_db
from ..wire.ui_history import ui_messages
from ..wire.ui_messages import HEADER, UIMessageWire
from .bodies import json_body
from .errors import api_view
from .files import take_upload
from .streaming import stream_response, trace_id_for
from .ui_request import REGENERATE, ChatRequest, chat_request, checked_chat_id


@api_view("POST")
async def chat(request: HttpRequest, user) -> HttpResponseBase:
    """A new message in the chat (made on first use), or its last answer made
    again, streamed in the UI message stream protocol."""
    received_at = time.monotonic()
    body = json_body(request)
    given = chat_request(body)
    model_name = chosen_model(body.get("model", ""), auto=True)
    conversation = await run_db(services.conversation_for_client, owner=user, client_id=given.chat_id)
    if given.trigger == REGENERATE:
        answer_turn = await run_db(_answer_to_regenerate, user, conversation, given.message_id)
        message = NewMessage(content="", model_name=model_name, version=Version(Version.REGENERATE, answer_turn))
    else:
        message = NewMessage(content=given.text, file_ids=await _file_ids(given, user), model_name=model_name)
    answer = await answering.send_message(
        owner=user,
        conversation_id=conversation.pk,
        message=message,
        trace_id=trace_id_for(request),
        received_at=received_at,
    )
    return _ui_stream(answer)


@api_view("GET")
async def chat_stream(request: HttpRequest, user, chat_id: str) -> HttpResponseBase:
    """The answer still being generated in the chat, from its start (the
    SDK replays it into a fresh message), or 204 when none is."""
    conversation = await run_db(_client_conversation, user, checked_chat_id(chat_id))
    answer = await _streaming_answer(user, conversation) if conversation is not None else None
    if answer is None:
        return HttpResponse(status=204)
    return _ui_stream(answer)


@api_view("GET")
async def chat_messages(request: HttpRequest, user, chat_id: str) -> HttpResponse:
    """The messages of the branch the chat shows, as UI messages (none for
    a chat not yet used): what a page gives useChat when it loads."""
    messages = await run_db(_saved_messages, user, checked_chat_id(chat_id))
    return JsonResponse({"messages": messages})


def _saved_messages(user, chat_id: str) -> list[dict]:
    conversation = _client_conversation(user, chat_id)
    if conversation is None:
        return []
    _, turns = selectors.conversation_with_turns(owner=user, conversation_id=conversation.pk)
    return ui_messages(turns, lambda file_id: reverse("conversations:api:file-content", args=[file_id]))


def _ui_stream(answer: LiveAnswer | Turn) -> HttpResponseBase:
    response = stream_response(answer, UIMessageWire(_turn_id(answer)))
    response[HEADER[0]] = HEADER[1]
    return response


def _turn_id(answer: LiveAnswer | Turn) -> uuid.UUID:
    return answer.pk if isinstance(answer, Turn) else answer.turn_id


async def _file_ids(given: ChatRequest, user) -> tuple[uuid.UUID, ...]:
    """The files the message sends: those uploaded before, then those sent
    inline, stored as uploads are (type, size and quota checked)."""
    stored = [await take_upload(SimpleUploadedFile(file.name, file.content), user) for file in given.inline]
    return given.uploaded + tuple(row.pk for row in stored)


def _answer_to_regenerate(user, conversation: Conversation, message_id: str) -> Turn:
    """The answer the client names (its message id is the turn's id), else
    the last answer of the branch the conversation shows."""
    turn_id = _uuid_or_none(message_id) or conversation.leaf
    answers = Turn.objects.filter(conversation=conversation, role=Turn.Role.ASSISTANT)
    answer = answers.filter(pk=turn_id).first() if turn_id is not None else None
    if answer is None:
        raise ApiError(409, "nothing_to_regenerate", "The chat has no saved answer to regenerate.")
    return answer


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _client_conversation(user, chat_id: str) -> Conversation | None:
    return Conversation.objects.filter(owner_id=user.pk, client_id=chat_id).first()


async def _streaming_answer(user, conversation: Conversation) -> LiveAnswer | None:
    """The newest answer being generated in the conversation, on any process."""
    generating = await live_answers().generating_in(conversation.pk)
    for found in sorted(generating, key=lambda answer: answer["position"], reverse=True):
        answer = await selectors.find_answer(owner=user, turn_id=uuid.UUID(str(found["turn_id"])))
        if answer is not None and not isinstance(answer, Turn):
            return answer
    return None
