"""The JSON and streaming API, used by the browser UI and by scripts. Each
view checks its input, calls a selector or a service, and shapes the answer."""

import time
import uuid
from pathlib import Path

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.http import content_disposition_header

from .. import answering, exports, selectors, services
from ..catalogue import ModelEntry, catalogue, chosen_model, default_entry
from ..exceptions import ApiError
from ..instructions import checked_parameters, checked_response_format, checked_system_prompt, instructions_in
from ..live import live_answers
from ..models import Conversation, Prompt, QueuedMessage, Turn
from ..queued import choice, rows, starting
from ..queued.following import QueuedAnswer
from ..routing import router
from ..serializers import conversation_detail_json, conversation_json, queued_json
from ..sharing.links import links_of
from ..storage.threads import run_db
from ..stream.output import saved_output
from ..tools import atools_for
from .bodies import idempotency_key, json_body, message_content, message_files, while_answering
from .errors import api_view, error_response, not_found, parse_id
from .sharing import shared_link_json
from .streaming import answer_response, trace_id_for
from .whole import wants_whole_answer, whole_answer_response

PAGE_SIZE = 20
TITLE_MAX_CHARS = 200
SEARCH_MAX_CHARS = 200
PROMPT_NAME_MAX_CHARS = 100
# A conversation's instructions, as PATCH checks them (instructions.py).
INSTRUCTION_CHECKS = {
    "system_prompt": checked_system_prompt,
    "parameters": checked_parameters,
    "response_format": checked_response_format,
}
OPENAPI_DESCRIPTION = (Path(__file__).resolve().parent.parent / "openapi.yaml").read_bytes()


def _title(request: HttpRequest) -> str:
    return _checked_title(json_body(request).get("title", ""))


def _checked_title(title: object) -> str:
    if not isinstance(title, str):
        raise ApiError(400, "invalid_title", "The title must be a string.")
    if "\x00" in title:
        raise ApiError(400, "invalid_title", "The title contains a NUL character.")
    if len(title) > TITLE_MAX_CHARS:
        raise ApiError(400, "title_too_long", f"The title has {len(title)} characters; the limit is {TITLE_MAX_CHARS}.")
    return title


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


def _search_words(request: HttpRequest) -> str:
    words = request.GET.get("q", "").strip()
    if "\x00" in words or len(words) > SEARCH_MAX_CHARS:
        raise ApiError(400, "invalid_query", f"Search for up to {SEARCH_MAX_CHARS} characters, without NUL.")
    return words


def _conversation_page(user, page_number: str, words: str = "") -> dict:
    found = selectors.search_conversations(owner=user, words=words) if words else None
    paginator = Paginator(found if found is not None else selectors.owned_conversations(owner=user), PAGE_SIZE)
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


def _detail(user, conversation_id) -> dict:
    conversation, turns = selectors.conversation_with_turns(owner=user, conversation_id=conversation_id)
    return conversation_detail_json(conversation, turns)


async def _conversation_now(user, conversation_id: uuid.UUID) -> dict:
    """The conversation's turns, its answers still being generated (no row
    yet: a page opened now, a reload or a second tab, follows them with GET
    .../turns/<id>/events) and its queued messages, in the order they will be
    answered. A queued message may start while these are read, at the moment
    a page refreshes because an answer ended: between the queue read before
    it and the turns read after it, neither would hold it. So the queue is
    read before and after the rest, and all again if it changed."""
    after = await run_db(rows.listed, conversation_id=conversation_id)
    for _ in range(3):
        queued = after  # the queue as it was before the turns were read
        detail = await run_db(_detail, user, conversation_id)
        detail["generating"] = await live_answers().generating_in(conversation_id)
        after = await run_db(rows.listed, conversation_id=conversation_id)
        if after == queued:
            break
    detail["queued"] = [queued_json(message) for message in queued]
    return detail


def _update(user, conversation_id, changes: dict) -> dict:
    """PATCH: a new title, model, tools or instructions answers with the conversation; a branch
    chosen (`leaf`) with the conversation and the turns it now shows."""
    conversation = selectors.owned_conversations(owner=user).get(pk=conversation_id)
    leaf = changes.pop("leaf", None)
    if changes:
        conversation = services.update_conversation(conversation=conversation, **changes)
    if leaf is None:
        return conversation_json(conversation)
    services.show_branch(conversation=conversation, turn_id=leaf)
    return _detail(user, conversation_id)


def _conversation_changes(request: HttpRequest) -> dict:
    """PATCH: the fields given, checked; a field left out stays as it is."""
    body = json_body(request)
    changes: dict[str, object] = {}
    if "title" in body:
        changes["title"] = _checked_title(body["title"])
    if "model" in body:
        changes["model"] = chosen_model(body["model"])
    if "tools" in body:
        if not isinstance(body["tools"], bool):
            raise ApiError(400, "invalid_tools", "tools must be true or false.")
        changes["tools"] = body["tools"]
    for name, check in INSTRUCTION_CHECKS.items():
        if name in body:
            changes[name] = check(body[name])
    if "leaf" in body:
        try:
            changes["leaf"] = uuid.UUID(body["leaf"])
        except (TypeError, ValueError, AttributeError):
            raise ApiError(400, "invalid_leaf", "The leaf must be a turn id.") from None
    if not changes:
        raise ApiError(
            400,
            "nothing_to_change",
            'Send {"title"}, {"model"}, {"tools"}, {"system_prompt"}, {"parameters"}, {"response_format"} or {"leaf"}.',
        )
    return changes


def _prompt_name(given: object) -> str:
    if not isinstance(given, str) or len(given) > PROMPT_NAME_MAX_CHARS:
        limit = PROMPT_NAME_MAX_CHARS
        raise ApiError(400, "invalid_prompt", f"prompt must be a prompt's name, of at most {limit} characters.")
    return given


@api_view("GET", "POST")
async def conversations(request: HttpRequest, user) -> HttpResponse:
    if request.method == "POST":
        body = json_body(request)
        try:
            conversation = await run_db(
                services.create_conversation,
                owner=user,
                title=_title(request),
                model=chosen_model(body.get("model", "")),
                instructions=instructions_in(body),
                prompt=_prompt_name(body.get("prompt", "")),
            )
        except Prompt.DoesNotExist:
            raise ApiError(404, "prompt_not_found", f"There is no prompt {body['prompt']!r}.") from None
        return JsonResponse(conversation_json(conversation), status=201)
    page = await run_db(_conversation_page, user, request.GET.get("page", "1"), _search_words(request))
    return JsonResponse(page)


@api_view("GET", "PATCH", "DELETE")
async def conversation(request: HttpRequest, user, conversation_id: str) -> HttpResponse:
    pk = parse_id(conversation_id)
    try:
        if request.method == "DELETE":
            await services.delete_conversation_and_answers(owner=user, conversation_id=pk)
            return HttpResponse(status=204)
        if request.method == "PATCH":
            return JsonResponse(await run_db(_update, user, pk, _conversation_changes(request)))
        detail = await _conversation_now(user, pk)
        await starting.start_waiting_once()
        detail["shared_links"] = [shared_link_json(request, link) for link in await run_db(links_of, pk)]
        return JsonResponse(detail)
    except Conversation.DoesNotExist:
        raise not_found() from None


@api_view("GET")
async def export(request: HttpRequest, user, conversation_id: str) -> HttpResponse:
    """The branch the conversation shows, as a file: `?format=md` or `json`."""
    kind = request.GET.get("format", "md")
    if kind not in exports.FORMATS:
        raise ApiError(400, "invalid_format", "The format is md or json.")
    try:
        conversation, turns = await run_db(
            selectors.conversation_with_turns, owner=user, conversation_id=parse_id(conversation_id)
        )
    except Conversation.DoesNotExist:
        raise not_found() from None
    if kind == "json":
        files = await run_db(selectors.conversation_files, conversation=conversation)
        text = exports.export_json(conversation, turns, files=files)
    else:
        text = exports.export_markdown(conversation, turns)
    response = HttpResponse(text, content_type=exports.FORMATS[kind])
    response["Content-Disposition"] = content_disposition_header(True, f"{exports.file_name(conversation)}.{kind}")
    return response


@api_view("POST")
async def messages(request: HttpRequest, user, conversation_id: str) -> HttpResponseBase:
    """Save the user's message, then stream the model's answer (or, with
    `Accept: application/json`, answer with the whole turn once it ends).
    While an answer is in progress in the conversation, `while_answering`
    may queue it instead (202), stop that answer first, or refuse it (409)."""
    received_at = time.monotonic()
    pk = parse_id(conversation_id)
    await starting.start_waiting_once()
    try:
        file_ids = message_files(request) or ()
        message = answering.NewMessage(
            content=message_content(request, with_files=bool(file_ids)),
            file_ids=file_ids,
            idempotency_key=idempotency_key(request),
            model_name=chosen_model(json_body(request).get("model", ""), auto=True),
            instructions=instructions_in(json_body(request)),
        )
        answer = await choice.send(
            owner=user,
            conversation_id=pk,
            message=message,
            trace_id=trace_id_for(request),
            received_at=received_at,
            while_answering=while_answering(request),
        )
    except Conversation.DoesNotExist:
        raise not_found() from None
    if isinstance(answer, QueuedMessage):  # followed at api/turns/<answer_turn_id>/events
        return JsonResponse(queued_json(answer), status=202)
    if wants_whole_answer(request):
        return await whole_answer_response(answer)
    return answer_response(request, answer)


@api_view("GET")
async def turn_events(request: HttpRequest, user, turn_id: str) -> HttpResponseBase:
    """An answer's events after the client's last one: followed live while it
    is being generated, replayed from the database once it is saved."""
    pk = parse_id(turn_id, "turn")
    after = _resume_offset(request)
    answer = await selectors.find_answer(owner=user, turn_id=pk)
    if answer is None:
        answer = await _queued_answer(user, pk)
    if isinstance(answer, Turn) and "Last-Event-ID" in request.headers and after >= saved_output(answer).length:
        # An EventSource reconnects whenever a stream closes, even after
        # `done`; the HTML standard's 204 tells it to stop.
        return HttpResponse(status=204)
    return answer_response(request, answer, after)


async def _queued_answer(user, answer_id: uuid.UUID) -> QueuedAnswer:
    """A queued message's answer, followed through its wait (queued/following.py)."""
    await starting.start_waiting_once()
    queued = await run_db(rows.waiting, owner=user, answer_id=answer_id)
    if queued is None:
        raise not_found("turn")
    return QueuedAnswer(owner=user, queued=queued)


@api_view("DELETE")
async def turn(request: HttpRequest, user, turn_id: str) -> HttpResponse:
    """Take a queued message out of the queue (by its turn id or its
    answer's): 409 once its answer has started."""
    await run_db(rows.cancel, owner=user, turn_id=parse_id(turn_id, "turn"))
    return HttpResponse(status=204)


@api_view("POST")
async def cancel_turn(request: HttpRequest, user, turn_id: str) -> HttpResponse:
    """Stop an answer being generated (from any tab or script): the upstream
    request is closed and the turn saved as `cancelled`."""
    turn = await services.stop_answer(owner=user, turn_id=parse_id(turn_id, "turn"))
    return JsonResponse(
        {
            "turn_id": str(turn.pk),
            "finish_reason": turn.finish_reason,
            "cancel_latency_ms": turn.cancel_latency_ms,
            "tokens_after_cancel": turn.tokens_after_cancel,
        }
    )


@api_view("GET")
async def models(request: HttpRequest, user) -> HttpResponse:
    """The models a message or a conversation may name, and the default."""
    return JsonResponse(
        {
            "default": default_entry().name,
            "models": [await _model_json(entry) for entry in catalogue().values()],
            "auto": router() is not None,  # "model": "auto" routes (LLM_ROUTER)
        }
    )


async def _model_json(entry: ModelEntry) -> dict:
    # The tools by name, once CHATSTREAM_TOOLS is imported and the MCP servers
    # listed (at first use; catalogue.py stays below tools/).
    return {**entry.public(), "tool_names": [tool.name for tool in await atools_for(entry)]}


async def openapi_description(request: HttpRequest) -> HttpResponse:
    """The API's OpenAPI description, public."""
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here.")
        response["Allow"] = "GET, HEAD"
        return response
    return HttpResponse(OPENAPI_DESCRIPTION, content_type="application/yaml")
