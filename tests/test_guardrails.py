"""Guardrails (CHATSTREAM_GUARDRAILS) through a real server and the fake
upstream: before the model call (refuse, rewrite), as the answer streams
(mask, stop) and on the saved turn (flag), async and sync hooks, and a hook
that fails or is too slow under each failure policy."""

import asyncio
import re
import sys
import threading
import types
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.urls import reverse

from conversations.guardrails.hooks import FAILED_REASON
from conversations.guardrails.refusals import CODE as REFUSED
from conversations.guardrails.review import FAILED_FLAG
from conversations.live.keys import journal_key
from conversations.models import Turn
from harness.fake_upstream import Behaviour

from .helpers import (
    answer_of,
    asked,
    post_and_read,
    read_events,
    redis_url,
    saved_answer,
    send,
    sse_events,
    start_event_and_a_delta,
    stream,
    text_of,
    wait_for,
)

HERE = "tests.test_guardrails"
RELEASE = threading.Event()  # lets the slow sync hooks' threads go at the end of each test


@pytest.fixture(autouse=True)
def released():
    RELEASE.clear()
    yield
    RELEASE.set()


class Refuses:
    def before(self, prompt):
        return {"refuse": "Questions about the weather are not allowed here."}


class Rewrites:
    async def before(self, prompt):  # async: on the loop
        asyncio.get_running_loop()
        *earlier, question = prompt
        return {"prompt": [*earlier, {**question, "content": question["content"].upper()}]}


class MasksDigits:
    """Sync: run on a thread, never on the event loop."""

    threads: list[bool] = []

    def on_output(self, kind, text):
        try:
            asyncio.get_running_loop()
            MasksDigits.threads.append(False)
        except RuntimeError:
            MasksDigits.threads.append(True)
        return "".join("#" if char.isdigit() else char for char in text)


class StopsAtThree:
    async def on_output(self, kind, text):
        return {"stop": "The answer mentioned three."} if "3" in text else None


class Flags:
    async def after(self, turn):
        return {"flag": f"Said {len(turn.content)} characters."} if turn.content else None


class RaisesBefore:
    def before(self, prompt):
        raise RuntimeError("the moderation service is down")


class SlowBefore:
    def before(self, prompt):
        RELEASE.wait(10)  # sync, on a thread: left waiting at the time limit, the message is not


class RaisesOutput:
    def on_output(self, kind, text):
        raise RuntimeError("the moderation service is down")


class SlowOutput:
    async def on_output(self, kind, text):
        await asyncio.Event().wait()  # async: cancelled at the time limit


class SlowAfter:
    async def after(self, turn):
        await asyncio.Event().wait()


class NoHooks:
    pass


def guarded(settings, *names: str, failure: str = "open") -> None:
    settings.CHATSTREAM_GUARDRAILS = [f"{HERE}.{name}" for name in names]
    settings.CHATSTREAM_GUARDRAIL_FAILURE = failure
    settings.CHATSTREAM_GUARDRAIL_TIMEOUT_SECONDS = 0.2


def refused(response, reason: str) -> None:
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "guardrail_refused", "message": reason}


# --- before ---------------------------------------------------------------------------


def test_a_refused_message_is_saved_with_the_reason_and_no_model_is_called(alice, upstream, settings):
    guarded(settings, "Refuses")
    conversation_id = alice.new_conversation()
    response = send(alice, conversation_id, "Will it rain?")
    reason = "Questions about the weather are not allowed here."
    refused(response, reason)
    assert upstream.calls == []
    question = Turn.objects.get(conversation_id=conversation_id, role="user")
    assert (question.content, question.error_code, question.error_detail) == ("Will it rain?", REFUSED, reason)
    answer = Turn.objects.get(conversation_id=conversation_id, role="assistant")
    assert (answer.status, answer.error_code, answer.error_detail) == ("failed", REFUSED, reason)
    assert (answer.cost, answer.tokens_in, answer.usage_source) == (None, None, "none")  # nothing paid for


class RefusesRain:
    def before(self, prompt):
        return {"refuse": "No weather."} if "rain" in prompt[-1]["content"] else None


def test_a_refused_question_is_never_sent_with_a_later_one(alice, upstream, settings):
    guarded(settings, "RefusesRain")
    conversation_id = alice.new_conversation()
    refused(send(alice, conversation_id, "Will it rain?"), "No weather.")
    with stream(alice, conversation_id, "What is 2 + 2?") as response:
        assert read_events(response)[-1]["event"] == "done"
    sent = [message["content"] for message in upstream.calls[0].body["messages"] if message["role"] == "user"]
    assert sent == ["What is 2 + 2?"]


def test_an_answer_made_again_and_refused_leaves_its_question_as_it_was(alice, upstream, settings):
    conversation_id, _, _ = post_and_read(alice, "Will it rain?")
    first = saved_answer(conversation_id)
    guarded(settings, "RefusesRain")
    refused(alice.client.post(f"/api/turns/{first.pk}/regenerate", json={}), "No weather.")
    question = Turn.objects.get(conversation_id=conversation_id, role="user")
    assert (question.error_code, question.error_detail) == ("", "")  # its first answer still stands
    versions = Turn.objects.filter(conversation_id=conversation_id, role="assistant").order_by("position")
    assert [answer.error_code for answer in versions] == ["", REFUSED] and len(upstream.calls) == 1


def test_a_queued_message_a_guardrail_refuses_lets_the_next_one_go(alice, upstream, settings):
    guarded(settings, "RefusesRain")
    upstream.next_calls.append(Behaviour(pace=0.02, tokens=40))  # the answer in progress
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        rain, after = (
            send(alice, conversation_id, content, while_answering="queue").json() for content in ("rain?", "Then?")
        )
        list(events)
    answer = answer_of(after["answer_turn_id"])
    assert answer.finish_reason == "stop" and asked(upstream) == ["First", "Then?"]
    refused_answer = Turn.objects.get(pk=rain["answer_turn_id"])
    assert (refused_answer.error_code, refused_answer.error_detail) == (REFUSED, "No weather.")
    assert Turn.objects.get(pk=rain["turn_id"]).error_code == REFUSED


def test_a_rewritten_prompt_is_what_the_model_gets(alice, upstream, settings):
    guarded(settings, "Rewrites")
    conversation_id, events, _ = post_and_read(alice, "quiet please")
    assert events[-1]["event"] == "done"
    assert upstream.calls[0].body["messages"][-1]["content"] == "QUIET PLEASE"
    assert Turn.objects.get(conversation_id=conversation_id, role="user").content == "quiet please"


# --- on_output -------------------------------------------------------------------------


def test_masked_output_is_the_same_for_the_client_the_journal_and_the_row(alice, upstream, settings, redis_ready):
    settings.REDIS_URL = redis_url()
    guarded(settings, "MasksDigits")
    MasksDigits.threads.clear()
    upstream.behaviour = Behaviour(tokens=12)
    conversation_id, events, _ = post_and_read(alice)
    seen = text_of(events)
    assert seen == "".join(f"t{'#' * len(str(index))} " for index in range(12))
    turn = saved_answer(conversation_id)
    client = redis.Redis.from_url(redis_url(), decode_responses=True)
    try:
        journal = "".join(entry["d"] for _, entry in client.xrange(journal_key(str(turn.pk))) if entry["k"] == "delta")
    finally:
        client.close()
    assert journal == turn.content == seen
    assert MasksDigits.threads and all(MasksDigits.threads)  # each call on a thread


def test_a_guardrail_that_stops_the_answer(alice, upstream, settings):
    guarded(settings, "StopsAtThree")
    upstream.behaviour = Behaviour(tokens=10, pace=0.02)  # the model still writing when it is stopped
    conversation_id, events, _ = post_and_read(alice)
    seen = text_of(events)  # up to the network read that held "t3" (reads may join tokens)
    assert "3" not in seen and "t0 t1 t2 t3 ".startswith(seen)
    assert events[-1]["event"] == "done" and events[-1]["data"]["finish_reason"] == "guardrail_stopped"
    turn = saved_answer(conversation_id)
    assert (turn.content, turn.finish_reason, turn.status) == (seen, "guardrail_stopped", "interrupted")
    assert turn.error_detail == "The answer mentioned three."
    assert upstream.closed_within(1.0)


def test_the_redaction_is_a_guardrail_after_the_operators_own(alice, upstream, settings):
    guarded(settings, "MasksDigits")
    settings.CHATSTREAM_REDACT = True
    upstream.behaviour = Behaviour(text="Write to ada@example.com at 9.", piece_chars=3)
    conversation_id, events, _ = post_and_read(alice)
    assert text_of(events) == saved_answer(conversation_id).content == "Write to [email] at #."
    assert saved_answer(conversation_id).redactions == 1


# --- after -----------------------------------------------------------------------------


def test_a_flagged_turn_is_first_in_the_review_queue_with_the_reason(alice, upstream, settings, client):
    post_and_read(alice)  # an answer no guardrail saw
    guarded(settings, "Flags")
    flagged_id, _, _ = post_and_read(alice)
    settings.CHATSTREAM_GUARDRAILS = []
    post_and_read(alice)  # a newer one, not flagged
    flagged = saved_answer(flagged_id)
    wait_for(lambda: Turn.objects.get(pk=flagged.pk).review_flag, 5, "the flag")
    reason = f"Said {len(flagged.content)} characters."
    assert Turn.objects.get(pk=flagged.pk).review_flag == reason
    staff = type(alice.user).objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(staff)
    page = client.get(reverse("admin:conversations_reviewitem_changelist"))
    listed = [turn.pk for turn in page.context["cl"].result_list]
    assert listed[0] == flagged.pk and len(listed) == 3
    assert f"flagged: {reason}" in page.text


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize("guardrail", ["RaisesBefore", "SlowBefore"])
def test_a_failing_or_slow_before_hook(alice, upstream, settings, caplog, guardrail):
    guarded(settings, guardrail, failure="open")
    _, events, _ = post_and_read(alice)
    assert events[-1]["event"] == "done"  # open: the message goes through
    assert any(record.getMessage() == "guardrail.failed" for record in caplog.records)
    settings.CHATSTREAM_GUARDRAIL_FAILURE = "closed"
    calls = len(upstream.calls)
    refused(send(alice, alice.new_conversation()), FAILED_REASON)
    assert len(upstream.calls) == calls


@pytest.mark.parametrize("guardrail", ["RaisesOutput", "SlowOutput"])
def test_a_failing_or_slow_output_hook(alice, upstream, settings, guardrail):
    upstream.behaviour = Behaviour(tokens=2)
    guarded(settings, guardrail, failure="open")
    conversation_id, events, _ = post_and_read(alice)
    assert text_of(events) == saved_answer(conversation_id).content == "t0 t1 "  # open: as the model wrote it
    settings.CHATSTREAM_GUARDRAIL_FAILURE = "closed"
    conversation_id, events, _ = post_and_read(alice)
    assert text_of(events) == "" and events[-1]["data"]["finish_reason"] == "guardrail_stopped"
    turn = saved_answer(conversation_id)
    assert (turn.content, turn.finish_reason, turn.error_detail) == ("", "guardrail_stopped", FAILED_REASON)


@pytest.mark.parametrize("failure", ["open", "closed"])
def test_a_slow_after_hook(alice, upstream, settings, failure):
    guarded(settings, "SlowAfter", "Flags", failure=failure)
    conversation_id, _, _ = post_and_read(alice)
    answer = saved_answer(conversation_id)
    said = f"Said {len(answer.content)} characters."
    expected = said if failure == "open" else f"{FAILED_FLAG}; {said}"
    wait_for(lambda: Turn.objects.get(pk=answer.pk).review_flag, 5, "the flag")
    assert Turn.objects.get(pk=answer.pk).review_flag == expected


# --- the docs' example ---------------------------------------------------------------


@pytest.fixture
def moderation_example(upstream, upstream_server, settings):
    """docs/guardrails.md's Moderation guardrail, as written there, with its
    catalogue on the fake upstream."""
    docs = (Path(__file__).parent.parent / "docs" / "guardrails.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", docs, re.S) if "class Moderation" in block)
    module = types.ModuleType("moderation_example")
    exec(compile(code, "docs/guardrails.md", "exec"), module.__dict__)
    sys.modules["moderation_example"] = module
    base_url = f"{upstream_server.url}/v1"
    settings.LLM_MODELS = {
        "chat": {"provider": "openai", "base_url": base_url, "model": "gpt-4.1-mini"},
        "guard": {"provider": "openai", "base_url": base_url, "model": "llama-guard-3-1b"},
    }
    settings.LLM_DEFAULT_MODEL = "chat"
    settings.CHATSTREAM_GUARDRAILS = ["moderation_example.Moderation"]
    yield upstream
    del sys.modules["moderation_example"]


@pytest.mark.parametrize("verdict", ["unsafe", "safe"])
def test_the_docs_moderation_example(alice, moderation_example, verdict):
    moderation_example.by_model["llama-guard-3-1b"] = Behaviour(text=verdict)
    response = send(alice, alice.new_conversation(), "How do I pick a lock?")
    asked = moderation_example.calls[0].body
    assert (asked["model"], asked["messages"][-1]["content"]) == ("llama-guard-3-1b", "How do I pick a lock?")
    if verdict == "unsafe":
        refused(response, "This question cannot be answered here.")
        assert len(moderation_example.calls) == 1  # the answering model was never called
    else:
        assert response.status_code == 200 and moderation_example.calls[1].body["model"] == "gpt-4.1-mini"


def test_the_check_names_a_path_that_does_not_import_and_a_class_without_hooks(settings):
    from conversations.checks import check_llm_settings

    settings.CHATSTREAM_GUARDRAILS = [f"{HERE}.Missing", f"{HERE}.NoHooks", f"{HERE}.Flags"]
    settings.CHATSTREAM_GUARDRAIL_FAILURE = "ajar"
    errors = [error for error in check_llm_settings(None) if error.id in ("conversations.E030", "conversations.E031")]
    assert [error.id for error in errors] == ["conversations.E030", "conversations.E030", "conversations.E031"]
    assert "Missing" in errors[0].msg and "does not import" in errors[0].msg
    assert "NoHooks" in errors[1].msg and "not a guardrail" in errors[1].msg
    with pytest.raises(Exception, match="E030"):
        call_command("check")
