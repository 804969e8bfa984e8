"""OpenAI's Responses API on the OpenAI door: `POST v1/responses`, streamed
(wire/openai_responses.py) or as one `response` object, and
`GET v1/responses/<id>` for a saved one.

A response's id is its answer's turn (`resp_<turn id hex>`). Without
`previous_response_id` a call is the chat door's (openai_compat.py): its
input, made chat messages (responses_request.py), is the whole prompt, in
the conversation `X-Chatstream-Conversation` names or a new one, retries
and client tool loop steps found as there. With it, the call goes on in
that answer's conversation as chatstream's own API does: the new question
follows that answer and the prompt is chatstream's saved history (within
the model's budget); function_call_output items instead answer that
answer's calls, and its new version carries on from them
(answering.Version.ANSWERED), so the history keeps every step.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse

from .. import answering
from ..answering import Version
from ..catalogue import chosen_model
from ..instructions import Instructions
from ..live import LiveAnswer
from ..models import Turn
from ..storage.threads import run_db
from ..wire.openai_responses import ResponseState, ResponseWire, own_output_start, response_id, saved_response
from .errors import api_view
from .openai_compat import door_answer, door_message, failed_response, with_headers
from .openai_request import PASSED_ON, invalid, last_user_text, text_of
from .responses_request import ResponsesCall, not_found, responses_request, turn_id_of
from .streaming import stream_response
from .whole import finished_turn

MessageFor = Callable[[Version | str], answering.NewMessage]  # openai_compat.door_answer's message_for
FOLLOWING_ROLES = frozenset({"user", "system"})  # what input may hold besides function_call_outputs, with a previous


@api_view("POST")
async def responses(request: HttpRequest, user) -> HttpResponseBase:
    received_at = time.monotonic()
    call = responses_request(request)
    previous = await _answer_turn(user, call.previous_id, "previous_response_id") if call.previous_id else None
    answered = Version(Version.ANSWERED, previous, _results(call, previous)) if previous and call.results else None
    message_for = _new_exchange(request, call) if previous is None else _following(call, previous, answered)
    conversation_id = previous.conversation_id if previous is not None else None
    answer, conversation_id = await door_answer(
        request, user, call.chat["messages"], received_at, message_for, conversation_id
    )
    names = {"model": call.chat["model"], "conversation": conversation_id}
    if call.chat["stream"]:
        return _streamed(answer, names, call.echo, answered)
    return await _whole(answer, names, call.echo)


@api_view("GET")
async def response(request: HttpRequest, user, response_id: str) -> HttpResponseBase:
    """A saved response (one still streaming has no row yet: 404 until it ends)."""
    turn = await _answer_turn(user, turn_id_of(response_id), None)
    return JsonResponse(saved_response(turn, turn.model, {}))


async def _answer_turn(user, turn_id: uuid.UUID, param: str | None) -> Turn:
    """The user's saved answer; OpenAI's 404 for any other id."""
    answers = Turn.objects.filter(pk=turn_id, conversation__owner_id=user.pk, role=Turn.Role.ASSISTANT)
    turn = await run_db(answers.first)
    if turn is None:
        raise not_found(response_id(turn_id), param)
    return turn


# --- the message ----------------------------------------------------------------------


def _new_exchange(request: HttpRequest, call: ResponsesCall) -> MessageFor:
    """A call without a previous response: the chat door's, its input the whole prompt."""
    question = last_user_text(call.chat["messages"])

    def message(carried: Version | str) -> answering.NewMessage:
        return door_message(request, call.chat, question, carried)

    return message


def _following(call: ResponsesCall, previous: Turn, answered: Version | None) -> MessageFor:
    """What makes the message of a call that goes on from `previous`: its
    calls answered (function_call_output), or a new question after it."""
    messages = _new_messages(call)
    system = "\n\n".join(text_of(m) for m in messages if m["role"] == "system") or None
    options = {name: call.chat[name] for name in PASSED_ON if name in call.chat and name != "response_format"}
    base = answering.NewMessage(
        content="",
        model_name=chosen_model(call.chat["model"], auto=True),
        instructions=Instructions(system_prompt=system, response_format=call.chat.get("response_format")),
        request_options=options,
        door=True,
    )
    if answered is not None:
        steps = replace(base, content="\n".join(result["output"] for result in call.results), version=answered)
        return lambda carried: steps
    asked = replace(base, content=_question(messages))

    def message(carried: Version | str) -> answering.NewMessage:
        if isinstance(carried, Version):  # a retry of an answer that failed: made again
            return replace(asked, version=carried)
        return replace(asked, idempotency_key=carried, follows=previous.pk)

    return message


def _new_messages(call: ResponsesCall) -> list[dict]:
    """The input's messages, all new ones: the history is chatstream's."""
    messages = [m for m in call.chat["messages"] if m["role"] != "tool"]
    if call.results and any(m["role"] != "system" for m in messages):
        raise invalid("input", "After previous_response_id, input is new messages or function_call_output items.")
    if any(m["role"] not in FOLLOWING_ROLES for m in messages):
        raise invalid("input", "After previous_response_id, the history is chatstream's: send only new messages.")
    return messages


def _question(messages: list[dict]) -> str:
    """The new question: its user messages' text. The saved history is text,
    so images go only with a call that sends its whole prompt."""
    users = [m for m in messages if m["role"] == "user"]
    if any(isinstance(m["content"], list) and any(p["type"] == "image_url" for p in m["content"]) for m in users):
        raise invalid("input", "Images go with a call that sends its whole input, without previous_response_id.")
    question = "\n\n".join(filter(None, map(text_of, users)))
    if not question.strip():
        raise invalid("input", "input needs a user message with text, or function_call_output items.")
    return question


def _results(call: ResponsesCall, previous: Turn) -> tuple[dict[str, Any], ...]:
    """The client's outputs as tool results (ToolResult.event()) of the calls they answer."""
    names = {tool_call["id"]: tool_call["name"] for tool_call in previous.tool_calls}
    for result in call.results:
        if result["call_id"] not in names:
            message = f"function_call_output {result['call_id']!r} answers no call of previous_response_id."
            raise invalid("input", message)
    return tuple(
        {"id": r["call_id"], "name": names[r["call_id"]], "output": r["output"], "duration_ms": 0} for r in call.results
    )


# --- the answer ------------------------------------------------------------------------


def _streamed(answer: LiveAnswer | Turn, names: dict, echo: dict, answered: Version | None) -> HttpResponseBase:
    """The answer's own output as Responses events: an answer that carries
    on from tool calls starts after the output it carries (earlier
    responses' own)."""
    if isinstance(answer, Turn):
        state = ResponseState(answer.pk, names["model"], answer.created_at.timestamp(), echo)
        after = own_output_start(answer)
    else:
        state = ResponseState(answer.turn_id, names["model"], time.time(), echo)
        after = sum(len(text) for _, text in answering.answered_output(answered)) if answered else 0
    return with_headers(stream_response(answer, ResponseWire(state), after), answer, names)


async def _whole(answer: LiveAnswer | Turn, names: dict, echo: dict) -> HttpResponseBase:
    turn = answer if isinstance(answer, Turn) else await finished_turn(answer)
    if turn.status == Turn.Status.FAILED:
        return failed_response(turn, names)
    return with_headers(JsonResponse(saved_response(turn, names["model"], echo)), turn, names)
