"""An OpenAI-compatible door: `POST v1/chat/completions` (streamed and not)
and `GET v1/models`, so any OpenAI SDK client talks through chatstream with
a chatstream API key as its `api_key`, and its turns are saved, limited,
budgeted, priced, reviewable in the admin and resumable like any other.

The client's `messages` are the whole prompt (chatstream's history is not
added, nor its memory unless `X-Chatstream-Memory: on` asks); its last user
message is the turn saved. A
conversation is named by `X-Chatstream-Conversation`, or made per call; the
response names both it and the answer's turn (`X-Chatstream-Turn`), so a
client can resume with `GET api/turns/<id>/events`. Streamed chunks follow
OpenAI's format, with reasoning as `delta.reasoning_content` (as DeepSeek
and vLLM send it) and the usage chunk when `stream_options.include_usage`.
"""

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse

from .. import answering, services
from ..catalogue import catalogue, chosen_model
from ..conf import conf
from ..exceptions import ApiError
from ..live import LiveAnswer
from ..models import Conversation, Turn
from ..providers import REASONING, REFUSAL, TEXT, TOOL_CALL
from ..storage.threads import run_db
from ..stream.events import DONE, ERROR, HEARTBEAT, START, saved_events
from .bodies import idempotency_key
from .errors import api_view, parse_id
from .openai_request import PASSED_ON, chat_request, last_user_text
from .streaming import AnswerStreamResponse, trace_id_for
from .whole import ERROR_STATUS, finished_turn

# chatstream's endings that OpenAI's vocabulary lacks: the answer stopped early.
FINISH_REASONS = {"cancelled": "stop", "client_disconnected": "stop"}
CONVERSATION_HEADER = "X-Chatstream-Conversation"
MEMORY_HEADER = "X-Chatstream-Memory"  # "on": the conversation's memory goes with the client's prompt


@api_view("GET")
async def models(request: HttpRequest, user) -> HttpResponse:
    entries = catalogue().values()
    data = [{"id": entry.name, "object": "model", "created": 0, "owned_by": entry.provider} for entry in entries]
    return JsonResponse({"object": "list", "data": data})


@api_view("POST")
async def chat_completions(request: HttpRequest, user) -> HttpResponseBase:
    received_at = time.monotonic()
    body = chat_request(request)
    key = idempotency_key(request)
    conversation_id = await _conversation(request, user, key)
    message = answering.NewMessage(
        content=last_user_text(body["messages"]),
        idempotency_key=key,
        model_name=chosen_model(body["model"], auto=True),
        prompt=body["messages"],
        with_memory=request.headers.get(MEMORY_HEADER, "").lower() in ("on", "true", "1"),
        request_options={name: body[name] for name in PASSED_ON if name in body},
    )
    try:
        answer = await answering.send_message(
            owner=user,
            conversation_id=conversation_id,
            message=message,
            trace_id=trace_id_for(request),
            received_at=received_at,
        )
    except Conversation.DoesNotExist:
        raise ApiError(404, "conversation_not_found", "No conversation with that id belongs to you.") from None
    names = {"model": body["model"], "conversation": conversation_id}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _streamed(answer, names, include_usage)
    return await _whole(answer, names)


async def _conversation(request: HttpRequest, user, key: str) -> uuid.UUID:
    """The header's conversation; else, for an Idempotency-Key, the one
    conversation that key names for this user (made by its first call, so a
    repeat finds the first call's message and gets its answer); else a new one."""
    given = request.headers.get(CONVERSATION_HEADER)
    if given:
        return parse_id(given)
    if key:
        conversation = await run_db(services.conversation_for_key, owner=user, key=key)
    else:
        conversation = await run_db(services.create_conversation, owner=user)
    return conversation.pk


# --- streamed ------------------------------------------------------------------------


def _streamed(answer: LiveAnswer | Turn, names: dict, include_usage: bool) -> HttpResponseBase:
    chunks = _Chunks(answer, names["model"])
    if isinstance(answer, Turn):
        response: HttpResponseBase = StreamingHttpResponse(
            _saved_body(answer, chunks, include_usage), content_type="text/event-stream"
        )
    else:
        body = _live_body(answer, chunks, include_usage)
        response = AnswerStreamResponse(answer, body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return _with_headers(response, answer, names)


async def _live_body(answer: LiveAnswer, chunks: "_Chunks", include_usage: bool) -> AsyncIterator[bytes]:
    yield b": stream open\n\n"
    try:
        async with aclosing(answer.follow(conf.CHATSTREAM_HEARTBEAT_SECONDS)) as events:
            async for kind, data, event_id in events:
                if kind == HEARTBEAT:
                    yield b": heartbeat\n\n"
                elif kind in (DONE, ERROR):
                    for chunk in chunks.ending(kind, data, include_usage):
                        yield chunk
                else:
                    yield chunks.output(kind, data, event_id)
    finally:
        await answer.close()


async def _saved_body(turn: Turn, chunks: "_Chunks", include_usage: bool) -> AsyncIterator[bytes]:
    """A repeated request (its Idempotency-Key) gets the first one's answer."""
    for kind, data, event_id in saved_events(turn, 0):
        if kind in (DONE, ERROR):
            for chunk in chunks.ending(kind, data, include_usage):
                yield chunk
        else:
            yield chunks.output(kind, data, event_id)


class _Chunks:
    """Our events as `chat.completion.chunk` objects on the wire."""

    def __init__(self, answer: LiveAnswer | Turn, model: str) -> None:
        turn_id = answer.pk if isinstance(answer, Turn) else answer.turn_id
        self.head = {"id": f"chatcmpl-{turn_id}", "object": "chat.completion.chunk", "created": int(time.time())}
        self.model = model
        self.calls = 0  # tool calls sent: each one's index

    def output(self, kind: str, data: Any, event_id: int) -> bytes:
        if kind == START:
            return self._chunk({"role": "assistant", "content": ""}, event_id)
        if kind == TEXT:
            return self._chunk({"content": data}, event_id)
        if kind == REASONING:
            return self._chunk({"reasoning_content": data}, event_id)
        if kind == REFUSAL:
            return self._chunk({"refusal": data}, event_id)
        assert kind == TOOL_CALL
        call = orjson.loads(data)
        fragment = {
            "index": self.calls,
            "id": call["id"],
            "type": "function",
            "function": {k: call[k] for k in ("name", "arguments")},
        }
        self.calls += 1
        return self._chunk({"tool_calls": [fragment]}, event_id)

    def ending(self, kind: str, data: dict, include_usage: bool) -> list[bytes]:
        """The finish chunk, the usage chunk if asked, `[DONE]`; for an error,
        a chunk that carries it (the SDKs raise on one)."""
        if kind == ERROR:
            return [_sse({"error": {"message": data["message"], "type": "upstream_error", "code": data["code"]}})]
        reason = FINISH_REASONS.get(data["finish_reason"], data["finish_reason"])
        chunks = [_sse({**self.head, "model": self.model, "choices": [_choice({}, reason)]})]
        if include_usage:
            usage = data["usage"]
            counts = (usage["tokens_in"], usage["tokens_out"], usage["tokens_cached"], usage["tokens_reasoning"])
            chunks.append(_sse({**self.head, "model": self.model, "choices": [], "usage": openai_usage(*counts)}))
        return [*chunks, b"data: [DONE]\n\n"]

    def _chunk(self, delta: dict, event_id: int) -> bytes:
        # `id:` as chatstream's own events have it: a place to resume from.
        payload = orjson.dumps({**self.head, "model": self.model, "choices": [_choice(delta, None)]})
        return b"id: %d\ndata: %b\n\n" % (event_id, payload)


def openai_usage(tokens_in: int | None, tokens_out: int | None, cached: int | None, reasoning: int | None) -> dict:
    prompt, completion = tokens_in or 0, tokens_out or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached or 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning or 0},
    }


def _choice(delta: dict, finish_reason: str | None) -> dict:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _with_headers(response: HttpResponseBase, answer: LiveAnswer | Turn, names: dict) -> HttpResponseBase:
    response["X-Request-ID"] = answer.trace_id
    response[CONVERSATION_HEADER] = str(names["conversation"])
    response["X-Chatstream-Turn"] = str(answer.pk if isinstance(answer, Turn) else answer.turn_id)
    return response


# --- one JSON object ------------------------------------------------------------------


async def _whole(answer: LiveAnswer | Turn, names: dict) -> HttpResponseBase:
    turn = answer if isinstance(answer, Turn) else await finished_turn(answer)
    if turn.status == Turn.Status.FAILED:
        error = {"code": turn.error_code, "message": turn.error_detail, "type": "upstream_error"}
        return _with_headers(JsonResponse({"error": error}, status=ERROR_STATUS.get(turn.error_code, 502)), turn, names)
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
        "usage": openai_usage(turn.tokens_in, turn.tokens_out, turn.tokens_cached, turn.tokens_reasoning),
    }
    return _with_headers(JsonResponse(completion), turn, names)
