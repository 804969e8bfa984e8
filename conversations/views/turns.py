"""One turn's actions: a new version of it (regenerate an answer, edit a
question, continue an answer that stopped), each streamed as a message's
answer is, the user's feedback on an answer, and their decision on a tool
call waiting for approval."""

import time
import uuid

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from .. import answering, selectors, services, tool_runs
from ..answering import NewMessage, Version
from ..catalogue import chosen_model
from ..exceptions import ApiError
from ..models import Conversation, Feedback, Turn
from ..serializers import approval_json, feedback_json
from ..storage.threads import run_db
from .bodies import idempotency_key, json_body, message_content, message_files
from .errors import api_view, not_found, parse_id
from .streaming import answer_response, trace_id_for
from .whole import wants_whole_answer, whole_answer_response

COMMENT_MAX_CHARS = 4000
REASON_MAX_CHARS = 2000

# The answers Continue can carry on: cut short, not finished.
CONTINUABLE = {
    Turn.FinishReason.CANCELLED,
    Turn.FinishReason.CLIENT_DISCONNECTED,
    Turn.FinishReason.CLIENT_STALLED,
    Turn.FinishReason.LENGTH,
    Turn.FinishReason.ERROR,
}


@api_view("POST")
async def regenerate(request: HttpRequest, user, turn_id: str) -> HttpResponseBase:
    """A new version of an answer, to the same question: streamed like a message's."""
    turn = await _own_turn(user, turn_id, Turn.Role.ASSISTANT)
    return await _stream_version(request, user, Version(Version.REGENERATE, turn), content="")


@api_view("POST")
async def edit(request: HttpRequest, user, turn_id: str) -> HttpResponseBase:
    """A new version of a question (`{"content"}`), then its answer, streamed."""
    turn = await _own_turn(user, turn_id, Turn.Role.USER)
    given = message_files(request)
    file_ids = given if given is not None else tuple(uuid.UUID(file["id"]) for file in turn.files)
    content = message_content(request, with_files=bool(file_ids))
    return await _stream_version(request, user, Version(Version.EDIT, turn), content=content, file_ids=file_ids)


@api_view("POST")
async def continue_answer(request: HttpRequest, user, turn_id: str) -> HttpResponseBase:
    """The rest of an answer that stopped or was cut: a new version that
    starts with its output (resent first) and goes on from there."""
    turn = await _own_turn(user, turn_id, Turn.Role.ASSISTANT)
    if turn.finish_reason not in CONTINUABLE:
        ended = f"The answer ended ({turn.finish_reason}): there is nothing to continue."
        raise ApiError(409, "not_continuable", ended)
    return await _stream_version(request, user, Version(Version.CONTINUE, turn), content="")


async def _own_turn(user, turn_id: str, role: str) -> Turn:
    try:
        turn = await run_db(selectors.owned_turn, owner=user, turn_id=parse_id(turn_id, "turn"))
    except Turn.DoesNotExist:
        raise not_found("turn") from None
    if turn.role != role:
        raise ApiError(409, "wrong_role", f"That turn is the {turn.role}'s; this action takes the {role}'s.")
    return turn


async def _stream_version(
    request: HttpRequest, user, version: Version, *, content: str, file_ids: tuple[uuid.UUID, ...] = ()
) -> HttpResponseBase:
    received_at = time.monotonic()
    message = NewMessage(
        content=content,
        file_ids=file_ids,
        # A key names one saved message: only an edit saves one.
        idempotency_key=idempotency_key(request) if version.action == Version.EDIT else "",
        model_name=chosen_model(json_body(request).get("model", ""), auto=True),
        version=version,
    )
    try:
        answer = await answering.send_message(
            owner=user,
            conversation_id=version.turn.conversation_id,
            message=message,
            trace_id=trace_id_for(request),
            received_at=received_at,
        )
    except Conversation.DoesNotExist:
        raise not_found() from None
    if wants_whole_answer(request):
        return await whole_answer_response(answer)
    return answer_response(request, answer)


@api_view("PUT", "DELETE")
async def feedback(request: HttpRequest, user, turn_id: str) -> HttpResponse:
    """The user's rating of an answer (`{"rating": "up" | "down", "comment"?}`),
    replacing any earlier one; DELETE takes it back."""
    pk = parse_id(turn_id, "turn")
    try:
        if request.method == "DELETE":
            await run_db(services.unrate_answer, owner=user, turn_id=pk)
            return HttpResponse(status=204)
        rating, comment = _rating(request)
        given = await run_db(services.rate_answer, owner=user, turn_id=pk, rating=rating, comment=comment)
    except Turn.DoesNotExist:
        raise not_found("turn") from None
    return JsonResponse(feedback_json(given))


def _rating(request: HttpRequest) -> tuple[str, str]:
    body = json_body(request)
    rating, comment = body.get("rating"), body.get("comment", "")
    if rating not in Feedback.Rating.values:
        raise ApiError(400, "invalid_rating", 'Send {"rating": "up"} or {"rating": "down"}.')
    if not isinstance(comment, str) or "\x00" in comment or len(comment) > COMMENT_MAX_CHARS:
        raise ApiError(400, "invalid_comment", f"The comment is a string of up to {COMMENT_MAX_CHARS} characters.")
    return rating, comment.strip()


@api_view("POST")
async def approvals(request: HttpRequest, user, turn_id: str) -> HttpResponse:
    """Approve or deny a tool call the answer waits on (`{"tool_call_id",
    "approved": true | false, "reason"?}`), served by any process."""
    call_id, approved, reason = _decision(request)
    run = await tool_runs.decide_approval(
        owner=user, turn_id=parse_id(turn_id, "turn"), call_id=call_id, approved=approved, reason=reason
    )
    return JsonResponse(approval_json(run))


def _decision(request: HttpRequest) -> tuple[str, bool, str]:
    body = json_body(request)
    call_id, approved, reason = body.get("tool_call_id"), body.get("approved"), body.get("reason", "")
    if not isinstance(call_id, str) or not call_id or not isinstance(approved, bool):
        raise ApiError(400, "invalid_decision", 'Send {"tool_call_id": "…", "approved": true or false}.')
    if not isinstance(reason, str) or "\x00" in reason or len(reason) > REASON_MAX_CHARS:
        raise ApiError(400, "invalid_reason", f"The reason is a string of up to {REASON_MAX_CHARS} characters.")
    return call_id, approved, reason.strip()
