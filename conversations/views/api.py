"""The JSON and streaming API, used by the browser UI and by scripts."""

import asyncio
import time
import uuid
from pathlib import Path

import orjson
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from .. import selectors, services
from ..conf import conf
from ..db import run_db
from ..exceptions import ApiError
from ..limits import close_stream_later, limits
from ..live import live_answers
from ..models import Conversation, Turn
from ..providers import get_provider
from ..relay import AnswerRelay
from ..serializers import conversation_detail_json, conversation_json
from .errors import api_view, error_response, not_found, parse_id
from .streaming import saved_stream_response, stream_response, trace_id_for

PAGE_SIZE = 20
TITLE_MAX_CHARS = 200
OPENAPI_DESCRIPTION = (Path(__file__).resolve().parent.parent / "openapi.yaml").read_bytes()
# A repeated message waits up to REPEAT_LOOKUPS x REPEAT_LOOKUP_PAUSE seconds
# for the first one's answer to start.
REPEAT_LOOKUPS, REPEAT_LOOKUP_PAUSE = 40, 0.05


def _json_body(request: HttpRequest) -> dict:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


def _message_content(request: HttpRequest) -> str:
    content = _json_body(request).get("content")
    if not isinstance(content, str) or not content.strip():
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


def _conversation_page(user, page_number: str) -> dict:
    paginator = Paginator(selectors.owned_conversations(owner=user), PAGE_SIZE)
    try:
        page = paginator.page(page_number)
    except PageNotAnInteger:
        raise ApiError(400, "invalid_page", "The page must be a whole number from 1.") from None
    except EmptyPage:
        raise ApiError(404, "page_not_found", f"Pages run from 1 to {paginator.num_pages}.") from None
    return {
        "count": paginator.count,
        "page": page.number,
        "pages": paginator.num_pages,
        "results": [conversation_json(c) for c in page.object_list],
    }


@api_view("GET", "POST")
async def conversations(request: HttpRequest, user) -> HttpResponse:
    if request.method == "POST":
        conversation = await run_db(services.create_conversation, owner=user, title=_title(request))
        return JsonResponse(conversation_json(conversation), status=201)
    return JsonResponse(await run_db(_conversation_page, user, request.GET.get("page", "1")))


def _detail(user, conversation_id) -> dict:
    conversation, turns = selectors.conversation_with_turns(owner=user, conversation_id=conversation_id)
    return conversation_detail_json(conversation, turns)


def _delete(user, conversation_id) -> None:
    services.delete_conversation(conversation=selectors.owned_conversations(owner=user).get(pk=conversation_id))


def _rename(user, conversation_id, title: str) -> dict:
    conversation = selectors.owned_conversations(owner=user).get(pk=conversation_id)
    return conversation_json(services.rename_conversation(conversation=conversation, title=title))


def _title(request: HttpRequest) -> str:
    title = _json_body(request).get("title", "")
    if not isinstance(title, str):
        raise ApiError(400, "invalid_title", "The title must be a string.")
    if "\x00" in title:
        raise ApiError(400, "invalid_title", "The title contains a NUL character.")
    if len(title) > TITLE_MAX_CHARS:
        raise ApiError(400, "title_too_long", f"The title has {len(title)} characters; the limit is {TITLE_MAX_CHARS}.")
    return title


@api_view("GET", "PATCH", "DELETE")
async def conversation(request: HttpRequest, user, conversation_id: str) -> HttpResponse:
    pk = parse_id(conversation_id)
    try:
        if request.method == "DELETE":
            await run_db(_delete, user, pk)
            return HttpResponse(status=204)
        if request.method == "PATCH":
            return JsonResponse(await run_db(_rename, user, pk, _title(request)))
        detail = await run_db(_detail, user, pk)
        # Answers still being generated have no row yet: a page opened now
        # (a reload, a second tab) follows them with GET /api/turns/<id>/events.
        detail["generating"] = await live_answers().generating_in(pk)
        return JsonResponse(detail)
    except Conversation.DoesNotExist:
        raise not_found() from None


@api_view("POST")
async def messages(request: HttpRequest, user, conversation_id: str) -> HttpResponseBase:
    """Save the user's message, then stream the model's answer."""
    received_at = time.monotonic()
    pk = parse_id(conversation_id)
    content = _message_content(request)
    trace_id = trace_id_for(request)
    key = _idempotency_key(request)
    stream_id = uuid.uuid4()
    await limits().count_message(user.pk)
    await limits().open_stream(user.pk, stream_id)
    try:
        relay = await _start_answer(request, user, pk, content, key, trace_id, received_at)
    except BaseException:
        await asyncio.shield(limits().close_stream(user.pk, stream_id))
        raise
    if not isinstance(relay, AnswerRelay):
        await limits().close_stream(user.pk, stream_id)
        return relay  # a repeated message: the first one's answer
    relay.add_done_callback(lambda: close_stream_later(user.pk, stream_id))
    return stream_response(request, relay)


async def _start_answer(
    request: HttpRequest, user, pk, content: str, key: str, trace_id: str, received_at: float
) -> AnswerRelay | HttpResponseBase:
    """Save the message and start its answer (or, for a repeat, the first
    one's answer events)."""
    start = asyncio.ensure_future(
        run_db(services.start_turn, owner=user, conversation_id=pk, content=content, idempotency_key=key)
    )
    try:
        prepared = await asyncio.shield(start)
    except Conversation.DoesNotExist:
        raise not_found() from None
    except services.DuplicateMessage as duplicate:
        return await _answer_to_repeat(request, user, duplicate.reply_id)
    except asyncio.CancelledError:
        await _answer_abandoned(start, trace_id, received_at)
        raise
    relay = AnswerRelay(prepared=prepared, provider=get_provider(), trace_id=trace_id, received_at=received_at)
    relay.start()
    try:
        await live_answers().publish(relay)
    except asyncio.CancelledError:
        await relay.close()  # the client left: no reader will come, so the policy applies now
        raise
    return relay


def _idempotency_key(request: HttpRequest) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if "\x00" in key:
        raise ApiError(400, "invalid_idempotency_key", "The Idempotency-Key header contains a NUL character.")
    if len(key) > 200:
        raise ApiError(400, "invalid_idempotency_key", "The Idempotency-Key header is longer than 200 characters.")
    return key


async def _answer_to_repeat(request: HttpRequest, user, reply_id) -> HttpResponseBase:
    """A message sent again with the same Idempotency-Key: the first one's
    answer, followed live or replayed, never a second model call."""
    # The first message's answer may not be findable yet: its row is
    # committed a moment before its process starts and shares the answer.
    for _ in range(REPEAT_LOOKUPS):
        response = await _answer_events(request, user, reply_id, after=0)
        if response is not None:
            return response
        await asyncio.sleep(REPEAT_LOOKUP_PAUSE)
    raise ApiError(409, "duplicate_in_progress", "This message is already being answered; retry in a moment.")


async def _answer_events(request: HttpRequest, user, turn_id, *, after: int) -> HttpResponseBase | None:
    """An answer's events after character `after`: followed live if this
    process is generating it, replayed from its row once saved; None if the
    user has no such answer."""
    live = await live_answers().find(turn_id)
    if live is not None and live.owner_id == user.pk:
        return stream_response(request, live, after)
    try:
        turn = await run_db(_finished_turn, user, turn_id)
    except Turn.DoesNotExist:
        return None
    return saved_stream_response(request, turn, after)


async def _answer_abandoned(start: asyncio.Future, trace_id: str, received_at: float) -> None:
    """The client left while its message was being saved. The message stays,
    so its answer's turn is written too, empty and marked as the client's
    doing, without calling the model."""
    try:
        prepared = await start
    except Conversation.DoesNotExist:
        return
    relay = AnswerRelay(prepared=prepared, provider=get_provider(), trace_id=trace_id, received_at=received_at)
    relay.start()
    await relay.close()  # cancels as client_disconnected before the model is called, then saves


def _finished_turn(user, turn_id) -> Turn:
    return Turn.objects.get(pk=turn_id, role=Turn.Role.ASSISTANT, conversation__owner=user)


@api_view("POST")
async def cancel_turn(request: HttpRequest, user, turn_id: str) -> HttpResponse:
    """Stop an answer being generated (from any tab or script): the upstream
    request is closed and the turn saved as `cancelled`."""
    pk = parse_id(turn_id, "turn")
    live = await live_answers().find(pk)
    if live is None or live.owner_id != user.pk:
        try:
            turn = await run_db(_finished_turn, user, pk)
        except Turn.DoesNotExist:
            raise not_found("turn") from None
        raise ApiError(409, "turn_finished", f"The answer has already ended ({turn.finish_reason}).")
    await live.stop()  # here, or in the process generating it
    try:
        turn = await run_db(_finished_turn, user, pk)
    except Turn.DoesNotExist:
        raise ApiError(504, "cancel_unconfirmed", "The answer was told to stop but is not saved yet.") from None
    return JsonResponse(
        {
            "turn_id": str(pk),
            "finish_reason": turn.finish_reason,
            "cancel_latency_ms": turn.cancel_latency_ms,
            "tokens_after_cancel": turn.tokens_after_cancel,
        }
    )


def _resume_offset(request: HttpRequest) -> int:
    """Where the client's copy of the answer ends: `Last-Event-ID` (what an
    EventSource sends on reconnect) or `?after=`; 0 for the whole answer."""
    given = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    try:
        offset = int(given)
    except ValueError:
        offset = -1
    if offset < 0:
        raise ApiError(400, "invalid_event_id", "Last-Event-ID (or ?after=) must be an event id: a whole number >= 0.")
    return offset


@api_view("GET")
async def turn_events(request: HttpRequest, user, turn_id: str) -> HttpResponseBase:
    """An answer's events after the client's last one: followed live while it
    is being generated, replayed from the database once it is saved."""
    response = await _answer_events(request, user, parse_id(turn_id, "turn"), after=_resume_offset(request))
    if response is None:
        raise not_found("turn")
    return response


async def openapi_description(request: HttpRequest) -> HttpResponse:
    """The API's OpenAPI description, public."""
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here.")
        response["Allow"] = "GET, HEAD"
        return response
    return HttpResponse(OPENAPI_DESCRIPTION, content_type="application/yaml")
