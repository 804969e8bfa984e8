"""Which saved question an OpenAI door call asks again, so that it is not
saved twice:

- an SDK's retry: the official SDKs retry a failed non-streamed call (two
  retries by default) with the same body and `X-Stainless-Retry-Count: N`
  (0 on the first attempt), and no Idempotency-Key. So a door call's
  question keeps, as its idempotency key, the client's or one derived from
  the user and the body (`request_key`), and a retry (N above 0) finds the
  question by it: its answer if it completed (the client lost the response,
  not the answer; one still live is waited for), else a new version of it
  (a failed or cut answer, made again). Without `X-Chatstream-Conversation`
  the door makes a conversation per call: the retry finds the first
  attempt's by the key too. A new call (N = 0) with a body already sent to
  the conversation is a new question, its key suffixed.
- a step of the client's own tool loop: messages that end with a tool
  result carry on the answer that asked for the tool (found by the call's
  id among the conversation's newest answers). The step's answer is a new
  version of that answer, to the same question: the conversation shows the
  question and the loop's latest answer; the earlier steps (their tool
  calls) are that answer's earlier versions. Without
  `X-Chatstream-Conversation`, the step's conversation is the one of the
  user's newest whose answer asked for the tool.
"""

import uuid
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from .. import selectors
from ..answering import Version, answer_to_repeat
from ..models import Conversation, Turn
from ..storage.threads import run_db
from .whole import finished_turn

RETRY_HEADER = "X-Stainless-Retry-Count"  # the official SDKs' attempt number, 0 first
REQUEST_KEY_PREFIX = "request:"
TOOL_STEP_LOOKBACK = 20  # the newest answers searched for the tool call a step's result answers
TOOL_STEP_CONVERSATIONS = 5  # without the header: the user's newest conversations searched so


@dataclass(frozen=True)
class Followup:
    """What a call carries on: a saved answer to make again, or the answer
    an earlier attempt of this call got; else the key its question keeps."""

    again: Turn | None = None
    reply_id: uuid.UUID | None = None
    key: str = ""


def is_retry(request: HttpRequest) -> bool:
    count = request.headers.get(RETRY_HEADER, "").strip()
    return count.isdigit() and int(count) > 0


def request_key(request: HttpRequest, user: AbstractBaseUser) -> str:
    """The key a door call's question keeps when its client sent none: the
    same for every attempt of one call (same user, same body), and no easier
    to guess than SECRET_KEY."""
    digest = salted_hmac("chatstream.door-request", f"{user.pk}\n".encode() + request.body, algorithm="sha256")
    return f"{REQUEST_KEY_PREFIX}{digest.hexdigest()}"


def conversation_of_request(*, owner: AbstractBaseUser, key: str) -> uuid.UUID | None:
    """The conversation a retry's first attempt made (request_key), if any."""
    asked = Turn.objects.filter(conversation__owner_id=owner.pk, role=Turn.Role.USER, idempotency_key=key)
    return asked.order_by("-created_at").values_list("conversation_id", flat=True).first()


def conversation_of_tool_step(*, owner: AbstractBaseUser, messages: list[dict]) -> uuid.UUID | None:
    """Without the header, the conversation a tool-loop step carries on: the
    one, of the user's newest, whose answer asked for the tool the messages'
    last one answers."""
    if _answered_call(messages) is None:
        return None
    newest = Conversation.objects.filter(owner_id=owner.pk).order_by("-updated_at")[:TOOL_STEP_CONVERSATIONS]
    for conversation_id in newest.values_list("pk", flat=True):
        turns = Turn.objects.filter(conversation_id=conversation_id).order_by("-position")
        if _asked_for_tool(turns, messages) is not None:
            return conversation_id
    return None


def followup(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, messages: list[dict], key: str, retry: bool
) -> Followup:
    """What this call carries on in the conversation (see the module's
    docstring), or the key of its new question."""
    turns = Turn.objects.filter(conversation_id=conversation_id, conversation__owner_id=owner.pk).order_by("-position")
    step_of = _asked_for_tool(turns, messages)
    implicit = key.startswith(REQUEST_KEY_PREFIX)
    # The newest question this call's key (a request key: or a suffixed one, below) names.
    by_key = {"idempotency_key__startswith": key} if implicit else {"idempotency_key": key}
    reply_id = turns.filter(role=Turn.Role.USER, **by_key).values_list("reply_id", flat=True).first()
    # A tool step's retry: its question's reply is the step's earlier attempt, not the answer it carries on.
    if retry and reply_id is not None and reply_id != (step_of.pk if step_of is not None else None):
        return Followup(reply_id=reply_id)
    if step_of is not None:
        return Followup(again=step_of)
    # A request key already taken: the same body sent on purpose again, a new question of its own.
    return Followup(key=f"{key}:{uuid.uuid4().hex[:8]}" if implicit and reply_id is not None else key)


def _asked_for_tool(turns: QuerySet[Turn], messages: list[dict]) -> Turn | None:
    """The answer whose tool call the messages' last one (a tool result) answers."""
    call_id = _answered_call(messages)
    if call_id is None:
        return None
    for answer in turns.filter(role=Turn.Role.ASSISTANT)[:TOOL_STEP_LOOKBACK]:
        if any(call.get("id") == call_id for call in answer.tool_calls):
            return answer
    return None


def _answered_call(messages: list[dict]) -> str | None:
    """The id of the tool call the messages' last one answers, if it is a tool result."""
    last = messages[-1]
    call_id = last.get("tool_call_id") if last.get("role") == "tool" else None
    return call_id if isinstance(call_id, str) else None


async def earlier_answer(owner: AbstractBaseUser, reply_id: uuid.UUID) -> Turn | Version:
    """The earlier attempt's answer if it stands (complete), else the version
    to make: that answer again. One still live is waited for: the attempt's
    client left (a timeout), and the answer may yet be cancelled for it."""
    answer = await selectors.find_answer(owner=owner, turn_id=reply_id)
    if answer is None:  # not findable yet: its row is a moment from committed
        answer = await answer_to_repeat(owner, reply_id)
    turn = answer if isinstance(answer, Turn) else await finished_turn(answer)
    return turn if turn.status == Turn.Status.COMPLETE else Version(Version.REGENERATE, turn)


async def find(
    request: HttpRequest, owner: AbstractBaseUser, conversation_id: uuid.UUID, messages: list[dict], key: str
) -> Turn | Version | str:
    """The answer this call gets without a new question; or the version of
    an answer it makes; or, for a new question, the key it keeps."""
    found = await run_db(
        followup, owner=owner, conversation_id=conversation_id, messages=messages, key=key, retry=is_retry(request)
    )
    if found.reply_id is not None:
        return await earlier_answer(owner, found.reply_id)
    return Version(Version.REGENERATE, found.again) if found.again is not None else found.key
