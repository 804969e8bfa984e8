"""Retries and fallback models: only before the first token, so no text is
ever sent twice; each failed call is recorded on the turn."""

import pytest

from harness.fake_upstream import Behaviour

from .helpers import post_and_read, saved_answer, sse_events, stream, text_of, wait_for_answer


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_passing_failure_is_tried_again_and_the_client_sees_one_answer(alice, upstream, status):
    upstream.behaviour = Behaviour(status=status, fail_first=2, tokens=5)
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert len(upstream.calls) == 3
    assert [event["event"] for event in events].count("start") == 1 and events[-1]["event"] == "done"
    assert text_of(events) == turn.content == "t0 t1 t2 t3 t4 "
    assert [attempt["code"] for attempt in turn.attempts] == ["upstream_status", "upstream_status"]
    assert turn.finish_reason == "stop" and turn.model == "fake-model"


def test_retries_give_up_after_llm_retries(alice, upstream, settings):
    settings.LLM_RETRIES = 1
    upstream.behaviour = Behaviour(status=503)
    conversation_id, events, _ = post_and_read(alice)
    assert len(upstream.calls) == 2 and events[-1]["data"]["code"] == "upstream_status"
    assert len(saved_answer(conversation_id).attempts) == 2


def test_retry_after_is_honoured(alice, upstream):
    upstream.behaviour = Behaviour(status=429, retry_after="0.3", fail_first=1, tokens=2)
    _, events, _ = post_and_read(alice)
    first, second = upstream.calls
    assert events[-1]["event"] == "done" and second.started_at - first.started_at >= 0.3


def test_a_refused_request_is_not_tried_again(alice, upstream):
    upstream.behaviour = Behaviour(status=400)
    conversation_id, events, _ = post_and_read(alice)
    assert len(upstream.calls) == 1 and events[-1]["data"]["code"] == "upstream_status"


def test_a_stream_cut_after_text_is_not_tried_again(alice, upstream):
    upstream.behaviour = Behaviour(tokens=10, cut_after=4)
    conversation_id, events, _ = post_and_read(alice)
    assert len(upstream.calls) == 1
    assert text_of(events) == saved_answer(conversation_id).content == "t0 t1 t2 t3 "


def test_a_stream_cut_before_any_text_is_tried_again(alice, upstream):
    upstream.behaviour = Behaviour(tokens=10, cut_after=0)
    conversation_id, events, _ = post_and_read(alice)
    assert len(upstream.calls) == 3 and events[-1]["data"]["code"] == "upstream_incomplete"
    assert saved_answer(conversation_id).content == ""


def test_no_first_token_in_time_is_tried_again(alice, upstream, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.1
    upstream.behaviour = Behaviour(first_token_delay=5)
    conversation_id, events, _ = post_and_read(alice)
    assert len(upstream.calls) == 3 and events[-1]["data"]["code"] == "upstream_timeout"
    assert upstream.closed_within(1.0)  # the fake notices on its own thread, a moment after the save
    assert all(call.disconnected_at is not None for call in upstream.calls)  # each try's request was closed


def test_fallback_models_are_tried_in_order(alice, upstream, settings):
    settings.LLM_FALLBACK_MODELS = ["second-model", "third-model"]
    upstream.behaviour = Behaviour(status=404)  # the configured model is unknown there
    upstream.by_model["second-model"] = Behaviour(status=503)
    upstream.by_model["third-model"] = Behaviour(tokens=3)
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert [call.body["model"] for call in upstream.calls] == ["fake-model", *["second-model"] * 3, "third-model"]
    assert events[-1]["event"] == "done" and turn.content == "t0 t1 t2 "
    assert turn.model == "third-model"  # which model answered
    assert [attempt["model"] for attempt in turn.attempts] == ["fake-model", *["second-model"] * 3]  # and why
    detail = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert detail["turns"][1]["model"] == "third-model" and len(detail["turns"][1]["attempts"]) == 4


def test_a_client_leaving_during_the_backoff_saves_the_turn(alice, upstream, settings):
    settings.LLM_RETRY_BACKOFF_SECONDS = 5.0  # the wait between tries is long; the client does not wait
    upstream.behaviour = Behaviour(status=503)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        next(sse_events(response))  # the start event
    turn = wait_for_answer(conversation_id, timeout=3)
    assert turn.finish_reason == "client_disconnected" and len(upstream.calls) == 1
