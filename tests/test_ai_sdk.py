"""The AI SDK's own client code (the `ai` package, pinned in
tests/aisdk/package.json, run by Node) against a live chatstream: its
transport and readUIMessageStream, and useChat's engine (AbstractChat)
sending, regenerating, stopping and resuming, read into the same message
the turn saved."""

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from conversations.models import Conversation, ToolRun, Turn
from harness.fake_upstream import Behaviour, reasoning_script

from .helpers import Pair, saved_answer, start_pair, use_demo_model_with_tools

# End to end: Node processes, and for resume two app processes.
pytestmark = pytest.mark.e2e

CHAT = Path(__file__).parent / "aisdk" / "chat.mjs"
T = TypeVar("T")


@pytest.fixture(autouse=True, scope="module")
def node():
    assert shutil.which("node"), "These tests need Node.js; `make test` installs tests/aisdk's packages."


def run_chat(base: str, key: str, chat_id: str, action: str, **spec) -> dict:
    """The script's report: {status, error, messages} as the SDK holds them."""
    with start_chat(base, key, chat_id, action, **spec) as process:
        return finished(process)


@contextlib.contextmanager
def start_chat(base: str, key: str, chat_id: str, action: str, **spec) -> Iterator[subprocess.Popen]:
    """The script running meanwhile (finished() reads its report)."""
    given = json.dumps({"base": base, "key": key, "chatId": chat_id, "action": action, **spec})
    process = subprocess.Popen(["node", str(CHAT), given], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.kill()
        process.communicate()


def finished(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def until_found(find: Callable[[], T | None], timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        assert time.monotonic() < deadline, "not found in time"
        time.sleep(0.02)
    return found


def saved_messages(api_user, chat_id: str) -> list[dict]:
    response = api_user.client.get(f"/api/ui/chat/{chat_id}/messages")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def parts_of(message: dict, kind: str) -> list[dict]:
    return [part for part in message["parts"] if part["type"] == kind]


def text_of(message: dict) -> str:
    return "".join(part["text"] for part in parts_of(message, "text"))


def the_answer(chat_id: str) -> Turn:
    return saved_answer(str(Conversation.objects.get(client_id=chat_id).pk))


def test_the_transport_reads_the_stream_into_the_saved_answer(alice, live, upstream):
    upstream.behaviour = Behaviour(script=reasoning_script(["Weighing ", "it."], ["Forty", "-two."]))
    report = run_chat(live.url, alice.key, "reader", "read", text="What is it?")
    message = report["messages"][-1]
    answer = the_answer("reader")
    assert message["id"] == str(answer.pk) and message["role"] == "assistant"
    assert [part["type"] for part in message["parts"]] == ["step-start", "reasoning", "text"]
    assert parts_of(message, "reasoning")[0]["text"] == answer.reasoning == "Weighing it."
    assert text_of(message) == answer.content == "Forty-two."
    assert all(part.get("state") in (None, "done") for part in message["parts"])
    assert message["metadata"]["usage"]["outputTokens"] == answer.tokens_out
    assert saved_messages(alice, "reader")[-1] == message  # what a page loads is what the stream built


def test_use_chat_reads_a_tool_loop_and_an_approval_into_its_parts(alice, live, settings):
    use_demo_model_with_tools(settings, tokens_per_second=0, first_token_delay=0)
    spec = {"text": "What time is it? And where is order A-17?"}
    with start_chat(live.url, alice.key, "tools", "send", **spec) as chatting:
        waiting = until_found(lambda: ToolRun.objects.filter(approval=ToolRun.Approval.PENDING).first())
        decided = alice.client.post(
            f"/api/turns/{waiting.turn_id}/approvals", json={"tool_call_id": waiting.call_id, "approved": True}
        )
        assert decided.status_code == 200, decided.text
        report = finished(chatting)
    assert (report["status"], report["error"]) == ("ready", None)
    user, message = report["messages"]
    answer = the_answer("tools")
    tools = [part for part in message["parts"] if part["type"].startswith("tool-")]
    assert [part["type"] for part in tools] == ["tool-current_time", "tool-lookup_order"]
    saved_results = {result["id"]: result for result in answer.tool_results}
    for part, call in zip(tools, answer.tool_calls, strict=True):
        assert part["toolCallId"] == call["id"] and part["state"] == "output-available"
        assert part["input"] == json.loads(call["arguments"])
        assert part["output"] == json.loads(saved_results[call["id"]]["output"])
    approval = parts_of(message, "data-approval")[0]["data"]
    assert (approval["id"], approval["name"], approval["turn_id"]) == (waiting.call_id, "lookup_order", message["id"])
    assert len(parts_of(message, "step-start")) == 2  # the calls, then the answer from their results
    assert text_of(message) == answer.content
    assert Turn.objects.get(conversation__client_id="tools", role="user").content == text_of(user)
    loaded_user, loaded = saved_messages(alice, "tools")
    assert loaded == message and loaded_user["parts"] == user["parts"]


def test_regenerate_replaces_the_answer_with_a_new_version(alice, live, upstream):
    first = run_chat(live.url, alice.key, "again", "send", text="Hello")
    upstream.behaviour = Behaviour(text="A second answer.")
    report = run_chat(live.url, alice.key, "again", "regenerate", messages=first["messages"])
    assert report["status"] == "ready" and len(report["messages"]) == 2
    message = report["messages"][-1]
    conversation = Conversation.objects.get(client_id="again")
    assert message["id"] == str(conversation.leaf) != first["messages"][-1]["id"]
    assert text_of(message) == Turn.objects.get(pk=conversation.leaf).content == "A second answer."
    assert conversation.turns.filter(role="user").count() == 1
    assert conversation.turns.filter(role="assistant").count() == 2


def test_stop_stops_the_model_and_saves_what_the_client_saw(alice, live, upstream):
    upstream.behaviour = Behaviour(pace=0.02, tokens=400)
    report = run_chat(live.url, alice.key, "stopped", "stop", text="Go on", stopAfterChars=12)
    shown = text_of(report["messages"][-1])
    answer = the_answer("stopped")
    assert answer.finish_reason == "client_disconnected" and answer.content.startswith(shown) and shown
    assert upstream.calls[-1].tokens_sent < 400  # the model call was closed


def test_resume_with_nothing_streaming_leaves_the_chat_as_it_was(alice, live, upstream):
    report = run_chat(live.url, alice.key, "quiet", "resume")
    assert (report["status"], report["error"], report["messages"]) == ("ready", None, [])


@pytest.fixture
def pair(tmp_path_factory, upstream_server, django_db_setup, redis_ready):
    """Two app processes sharing Redis, an answer kept going for a client
    that left (`continue`): the reload of a page, then its resume."""
    a, b = start_pair(tmp_path_factory, upstream_server.url, "continue")
    with a, b:
        yield Pair.of(a, b)


def test_resume_after_a_cut_reads_the_whole_answer_on_another_process(on, pair, upstream):
    upstream.behaviour = Behaviour(pace=0.02, tokens=60)
    body = {"id": "reloaded", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}]}
    with on["a"].client.stream("POST", "/api/ui/chat", json=body) as cut:
        lines = cut.iter_lines()
        while "text-delta" not in next(lines):
            pass
    report = run_chat(pair.b, on["b"].key, "reloaded", "resume")
    assert (report["status"], report["error"]) == ("ready", None)
    message = report["messages"][-1]
    answer = the_answer("reloaded")
    assert message["id"] == str(answer.pk) and text_of(message) == answer.content
    assert answer.finish_reason == "stop" and message["metadata"]["finishReason"] == "stop"
    assert len(upstream.calls) == 1
