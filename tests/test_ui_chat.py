"""The AI SDK's door (api/ui/chat): useChat's request body in, the UI message
stream out, as chunks on the wire; the real `ai` package reads it in
tests/test_ai_sdk.py."""

import base64

import orjson
import pytest

from conversations.models import Conversation, Turn
from conversations.stream.events import (
    APPROVAL,
    DELTA,
    DONE,
    ERROR,
    REASONING,
    REFUSAL,
    START,
    STEP,
    TOOL_CALL,
    TOOL_RESULT,
)
from conversations.wire.ui_messages import UIMessageWire
from harness.fake_upstream import Behaviour, reasoning_script

from .files import error_code, png, upload
from .helpers import saved_answer


def ui_message(text: str = "", *files: dict, role: str = "user") -> dict:
    parts = [*files, *([{"type": "text", "text": text}] if text else [])]
    return {"id": "m1", "role": role, "parts": parts}


def chat(api_user, chat_id: str = "chat-1", *messages: dict, **body):
    """useChat's default transport's request: its whole answer, as chunks."""
    sent = {"id": chat_id, "messages": list(messages) or [ui_message("Hello")], "trigger": "submit-message", **body}
    response = api_user.client.post("/api/ui/chat", json=sent)
    return response, chunks_of(response.content) if response.status_code == 200 else []


def chunks_of(raw: bytes) -> list:
    """Each `data:` line's JSON, "[DONE]" as itself; comments skipped."""
    lines = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else orjson.loads(line) for line in lines]


def types(chunks: list) -> list[str]:
    return [chunk if chunk == "[DONE]" else chunk["type"] for chunk in chunks]


def text_of(chunks: list) -> str:
    return "".join(chunk["delta"] for chunk in chunks[:-1] if chunk["type"] == "text-delta")


def runs(names: list[str]) -> list[str]:
    """The names with each run of one name as one."""
    return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]


def test_a_message_streams_as_the_ui_message_stream_and_is_saved(alice, upstream):
    response, chunks = chat(alice, "kP3xQz9", ui_message("Hello"))
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache, no-transform"
    # A reader that falls behind gets pending text in one delta: how many varies.
    assert runs(types(chunks)) == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    conversation = Conversation.objects.get(client_id="kP3xQz9")
    answer = saved_answer(str(conversation.pk))
    assert chunks[0]["messageId"] == str(answer.pk)
    assert text_of(chunks) == answer.content
    finish = chunks[-2]
    assert finish["finishReason"] == "stop" and finish["messageMetadata"]["turnId"] == str(answer.pk)
    assert finish["messageMetadata"]["usage"]["outputTokens"] == answer.tokens_out
    assert Turn.objects.get(conversation=conversation, role="user").content == "Hello"


def test_the_chat_id_names_one_conversation_per_user(alice, bob, upstream):
    chat(alice, "same", ui_message("One"))
    history = [ui_message("One"), ui_message("t0", role="assistant"), ui_message("Two")]
    chat(alice, "same", *history)
    chat(bob, "same", ui_message("Bob's"))
    alices = Conversation.objects.get(client_id="same", owner=alice.user)
    assert [turn.content for turn in alices.turns.filter(role="user").order_by("position")] == ["One", "Two"]
    assert Conversation.objects.get(client_id="same", owner=bob.user).turns.filter(role="user").count() == 1
    # chatstream's own history is the prompt, not the client's copy of it.
    prompt = upstream.calls[1].body["messages"]
    assert [m["content"] for m in prompt if m["role"] == "user"] == ["One", "Two"]


def test_reasoning_comes_before_the_text_as_parts_of_their_own(alice, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(["Let me ", "think."], ["The ", "answer."]))
    _, chunks = chat(alice, "thinker")
    assert runs(types(chunks))[2:9] == [
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
    ]
    reasoning_id, text_id = (next(c["id"] for c in chunks if c["type"] == f"{k}-start") for k in ("reasoning", "text"))
    assert reasoning_id != text_id
    answer = saved_answer(str(Conversation.objects.get(client_id="thinker").pk))
    assert (answer.reasoning, answer.content) == ("Let me think.", "The answer.")


def test_an_upstream_failure_is_an_error_chunk_and_a_saved_turn(alice, upstream):
    upstream.behaviour = Behaviour(status=500)
    _, chunks = chat(alice, "failing")
    assert types(chunks)[-3:] == ["finish-step", "error", "[DONE]"]
    answer = saved_answer(str(Conversation.objects.get(client_id="failing").pk))
    assert answer.finish_reason == "error" and chunks[-2]["errorText"] == answer.error_detail


def test_regenerate_makes_the_named_answer_again_as_a_new_version(alice, upstream):
    _, first = chat(alice, "again", ui_message("Hello"))
    answer_id = first[0]["messageId"]
    response = alice.client.post(
        "/api/ui/chat",
        json={
            "id": "again",
            "messages": [ui_message("Hello")],
            "trigger": "regenerate-message",
            "messageId": answer_id,
        },
    )
    chunks = chunks_of(response.content)
    assert types(chunks)[-2:] == ["finish", "[DONE]"] and chunks[0]["messageId"] != answer_id
    conversation = Conversation.objects.get(client_id="again")
    answers = conversation.turns.filter(role="assistant")
    assert answers.count() == 2 and conversation.turns.filter(role="user").count() == 1
    assert len({answer.parent for answer in answers}) == 1  # two versions of the same answer
    assert str(conversation.leaf) == chunks[0]["messageId"]


def test_regenerate_without_an_answer_is_a_conflict(alice, upstream):
    response = alice.client.post("/api/ui/chat", json={"id": "nothing-yet", "trigger": "regenerate-message"})
    assert (response.status_code, error_code(response)) == (409, "nothing_to_regenerate")


def test_files_come_as_uploads_or_data_urls(alice, upstream, stored_in, settings):
    settings.LLM_VISION = True
    uploaded = upload(alice, "a.png", png()).json()
    by_url = {"type": "file", "mediaType": "image/png", "url": f"http://x/api/files/{uploaded['id']}/content"}
    inline = {
        "type": "file",
        "mediaType": "text/plain",
        "filename": "notes.txt",
        "url": "data:text/plain;base64," + base64.b64encode(b"Remember the milk.").decode(),
    }
    response, chunks = chat(alice, "with-files", ui_message("What are these?", by_url, inline))
    assert response.status_code == 200, response.text
    assert types(chunks)[-1] == "[DONE]"
    question = Conversation.objects.get(client_id="with-files").turns.get(role="user")
    assert [file["name"] for file in question.files] == ["a.png", "notes.txt"]
    sent = orjson.dumps(upstream.calls[-1].body["messages"]).decode()
    assert "Remember the milk." in sent and "image_url" in sent


def test_saved_messages_load_as_ui_messages(alice, upstream, stored_in, settings):
    settings.LLM_VISION = True
    assert alice.client.get("/api/ui/chat/new-chat/messages").json() == {"messages": []}
    uploaded = upload(alice, "a.png", png()).json()
    by_url = {"type": "file", "mediaType": "image/png", "url": f"/api/files/{uploaded['id']}/content"}
    _, first = chat(alice, "loaded", ui_message("Look", by_url))
    upstream.behaviour = Behaviour(script=reasoning_script(["Hm."], ["Yes."]))
    chat(alice, "loaded", ui_message("Look"), ui_message("t0", role="assistant"), ui_message("Sure?"))
    question, answer, again, second = alice.client.get("/api/ui/chat/loaded/messages").json()["messages"]
    assert question["parts"] == [
        {"type": "file", "mediaType": "image/png", "filename": "a.png", "url": f"/api/files/{uploaded['id']}/content"},
        {"type": "text", "text": "Look"},
    ]
    assert answer["id"] == first[0]["messageId"] and answer["parts"][0] == {"type": "step-start"}
    assert answer["parts"][1] == {"type": "text", "text": text_of(first), "state": "done"}
    assert answer["metadata"]["finishReason"] == "stop" and again["parts"] == [{"type": "text", "text": "Sure?"}]
    assert [part["type"] for part in second["parts"]] == ["step-start", "reasoning", "text"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"id": "has space", "messages": [ui_message("Hi")]}, "invalid_chat_id"),
        ({"id": "x" * 201, "messages": [ui_message("Hi")]}, "invalid_chat_id"),
        ({"id": "c", "messages": []}, "invalid_messages"),
        ({"id": "c", "messages": [ui_message("Hi", role="assistant")]}, "invalid_messages"),
        ({"id": "c", "messages": [ui_message("  ")]}, "invalid_content"),
        ({"id": "c", "messages": [ui_message("Hi")], "trigger": "resume-stream"}, "invalid_trigger"),
        (
            {"id": "c", "messages": [ui_message("Hi", {"type": "file", "url": "https://example.com/a.png"})]},
            "unsupported_file_url",
        ),
        (
            {"id": "c", "messages": [ui_message("Hi", {"type": "file", "url": "data:text/plain;base64,%%%"})]},
            "invalid_files",
        ),
    ],
)
def test_a_body_useChat_would_not_send_is_a_400(alice, upstream, body, code):
    response = alice.client.post("/api/ui/chat", json=body)
    assert (response.status_code, error_code(response)) == (400, code)
    assert not Turn.objects.exists()


def test_resuming_a_chat_with_nothing_streaming_is_204(alice, upstream):
    assert alice.client.get("/api/ui/chat/never-used/stream").status_code == 204
    chat(alice, "ended")
    assert alice.client.get("/api/ui/chat/ended/stream").status_code == 204


def test_resume_follows_the_answer_still_streaming_from_its_start(alice, upstream):
    upstream.behaviour = Behaviour(pace=0.02, tokens=30)
    with alice.client.stream("POST", "/api/ui/chat", json={"id": "live", "messages": [ui_message("Hi")]}) as first:
        lines = first.iter_lines()
        while "text-delta" not in next(lines):
            pass
        resumed = alice.client.get("/api/ui/chat/live/stream")
    chunks = chunks_of(resumed.content)
    answer = saved_answer(str(Conversation.objects.get(client_id="live").pk))
    assert types(chunks)[:2] == ["start", "start-step"] and chunks[0]["messageId"] == str(answer.pk)
    assert text_of(chunks) == answer.content
    assert answer.finish_reason == "stop" and len(upstream.calls) == 1


def test_it_needs_a_signed_in_user(live, upstream):
    from .helpers import api_client

    with api_client(live.url) as anonymous:
        response = anonymous.post("/api/ui/chat", json={"id": "c", "messages": [ui_message("Hi")]})
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


# --- the wire, event by event -------------------------------------------------------------


def encoded(*events) -> list:
    wire = UIMessageWire("turn-1")
    return chunks_of(b"".join(wire.encode(event) for event in events))


DONE_DATA = {
    "finish_reason": "stop",
    "usage": {"tokens_in": 3, "tokens_out": 4, "tokens_cached": None, "tokens_reasoning": None, "estimated": True},
    "cost": None,
    "duration_ms": 5,
}
STARTED = (START, {"turn_id": "turn-1"}, 0)


def test_a_tool_loop_is_tool_parts_and_steps():
    call = orjson.dumps({"id": "c1", "name": "lookup_order", "arguments": '{"order": 7}'}).decode()
    result = orjson.dumps({"id": "c1", "name": "lookup_order", "output": '{"status": "sent"}', "duration_ms": 3})
    failed = orjson.dumps({"id": "c2", "name": "lookup_order", "error": "no such order", "duration_ms": 1})
    chunks = encoded(
        STARTED,
        (DELTA, "Looking", 7),
        (TOOL_CALL, call, 9),
        (TOOL_RESULT, result.decode(), 10),
        (TOOL_RESULT, failed.decode(), 11),
        (STEP, '{"n":2}', 12),
        (DELTA, "Sent.", 13),
        (DONE, DONE_DATA, 13),
    )
    assert types(chunks) == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-available",
        "tool-output-available",
        "tool-output-error",
        "finish-step",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    assert chunks[5] == {
        "type": "tool-input-available",
        "toolCallId": "c1",
        "toolName": "lookup_order",
        "input": {"order": 7},
    }
    assert chunks[6]["output"] == {"status": "sent"} and chunks[7]["errorText"] == "no such order"
    assert chunks[2]["id"] != chunks[10]["id"]
    assert chunks[-2]["messageMetadata"]["usage"]["estimated"] is True


def test_a_refusal_and_an_approval_are_data_parts():
    request = orjson.dumps({"id": "c1", "name": "refund", "arguments": "{}"}).decode()
    chunks = encoded(STARTED, (REFUSAL, "I can't.", 8), (APPROVAL, request, 9), (DONE, DONE_DATA, 9))
    assert chunks[2] == {"type": "data-refusal", "data": {"text": "I can't."}}
    assert chunks[3]["type"] == "data-approval" and chunks[3]["data"]["turn_id"] == "turn-1"


def test_a_stopped_answer_ends_with_abort_and_its_figures():
    stopped = {**DONE_DATA, "finish_reason": "cancelled"}
    chunks = encoded(STARTED, (REASONING, "Hm", 2), (DONE, stopped, 2))
    assert types(chunks)[-5:] == ["reasoning-end", "finish-step", "message-metadata", "abort", "[DONE]"]
    assert chunks[-2]["reason"] == "cancelled"
    assert chunks[-3]["messageMetadata"]["finishReason"] == "cancelled"


def test_an_error_closes_the_open_part_first():
    error = {"code": "upstream_error", "message": "The model server failed.", "finish_reason": "error"}
    chunks = encoded(STARTED, (DELTA, "Hal", 3), (ERROR, error, 3))
    assert types(chunks)[-4:] == ["text-end", "finish-step", "error", "[DONE]"]
