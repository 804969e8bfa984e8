"""The answer's stream through a real ASGI server and the real fake upstream."""

import json
import threading
import time
from contextlib import ExitStack

import pytest
from django.db import connection

from conversations.conf import conf
from conversations.models import Turn
from conversations.providers.estimates import text_tokens
from harness.fake_upstream import Behaviour

from .helpers import (
    connections_held,
    post_and_read,
    races,
    read_events,
    saved_answer,
    sse_events,
    stream,
    text_of,
    wait_for_answer,
)


def test_headers_and_first_byte(alice, upstream):
    upstream.behaviour = Behaviour(first_token_delay=0.5, tokens=2)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        first = next(response.iter_raw())
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache, no-transform"
        assert response.headers["X-Accel-Buffering"] == "no"
        # The API skips Django's per-request thread, not its middleware.
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        # Sent before the model's first token: proxies see a live response.
        assert first.startswith(b": stream open\nretry: 3000\n\n") and all(
            call.tokens_sent == 0 for call in upstream.calls
        )
    wait_for_answer(conversation_id)  # saved as the client left, before the test's database goes


def test_tokens_arrive_before_the_answer_ends(alice, upstream):
    upstream.behaviour = Behaviour(pace=0.05, tokens=20)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        next(event for event in sse_events(response) if event["event"] == "delta")
        # The client holds a token while the model is still producing.
        assert upstream.calls[-1].finished_at is None and upstream.calls[-1].tokens_sent < 20
    wait_for_answer(conversation_id)


def test_events_ids_and_the_saved_turn_agree(alice, upstream):
    upstream.behaviour = Behaviour(tokens=30)
    conversation_id, events, _ = post_and_read(alice)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    text = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    turn = saved_answer(conversation_id)
    assert text == turn.content == "".join(f"t{i} " for i in range(30))
    # Each id is the answer's length after the event: a place in the saved text.
    received = 0
    for event in events[1:-1]:
        received += len(event["data"]["text"])
        assert int(event["id"]) == received
    assert int(events[-1]["id"]) == len(turn.content)
    start, done = events[0]["data"], events[-1]["data"]
    assert start == {
        "turn_id": str(turn.id),
        "conversation_id": conversation_id,
        "trace_id": turn.trace_id,
        "model": "fake-model",
    }
    assert done["finish_reason"] == "stop" and done["usage"] == {
        "tokens_in": 11,
        "tokens_out": 30,
        "tokens_cached": None,
        "tokens_reasoning": None,
        "estimated": False,
        "source": "reported",
    }
    assert (turn.status, turn.finish_reason, turn.tokens_out, turn.provider) == ("complete", "stop", 30, "openai")
    assert turn.ttft_ms is not None and turn.duration_ms >= turn.ttft_ms


def test_history_is_sent_as_the_prompt(alice, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id = alice.new_conversation()
    for content in ("first question", "second question"):
        with stream(alice, conversation_id, content) as response:
            response.read()
    system, *history = upstream.calls[-1].body["messages"]
    assert system["role"] == "system"
    assert history == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "t0 t1 "},
        {"role": "user", "content": "second question"},
    ]
    assert list(Turn.objects.filter(conversation_id=conversation_id).values_list("position", "role")) == [
        (0, "user"),
        (1, "assistant"),
        (2, "user"),
        (3, "assistant"),
    ]


def test_request_id_becomes_the_trace_id(alice, upstream):
    conversation_id, events, response = post_and_read(alice, headers={"X-Request-ID": "req-123"})
    assert events[0]["data"]["trace_id"] == "req-123" == response.headers["X-Request-ID"]
    assert saved_answer(conversation_id).trace_id == "req-123"


def test_hostile_model_text_keeps_its_framing(alice, upstream):
    hostile = 'a\n\nevent: error\ndata: {"x": 1}\n\nid: 99\r\n"quotes" 😀 \u2028 : not a comment'
    upstream.behaviour = Behaviour(text=hostile)
    conversation_id, events, _ = post_and_read(alice, content='data: "hi"\n\nevent: done 🎉')
    assert "".join(e["data"]["text"] for e in events if e["event"] == "delta") == hostile
    assert events[-1]["event"] == "done"
    assert saved_answer(conversation_id).content == hostile


def test_ndjson_when_accept_prefers_it(alice, upstream):
    upstream.behaviour = Behaviour(tokens=5)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, headers={"Accept": "application/x-ndjson"}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert response.headers["Content-Type"] == "application/x-ndjson"
    types = [line["type"] for line in lines]
    assert types[0] == "start" and types[-1] == "done" and set(types[1:-1]) == {"delta"}
    assert "".join(line["text"] for line in lines[1:-1]) == saved_answer(conversation_id).content
    assert lines[0]["id"] == 0 and lines[-2]["id"] == lines[-1]["id"] == 15


@pytest.mark.parametrize("accept", ["application/x-ndjson, text/event-stream", "*/*", "text/html"])
def test_sse_on_ties_and_otherwise(alice, upstream, accept):
    with stream(alice, alice.new_conversation(), headers={"Accept": accept}) as response:
        response.read()
    assert response.headers["Content-Type"] == "text/event-stream"


def test_heartbeats_while_the_model_is_silent(alice, upstream, settings):
    settings.CHATSTREAM_HEARTBEAT_SECONDS = 0.05
    upstream.behaviour = Behaviour(first_token_delay=0.4, tokens=2)
    _, events, response = post_and_read(alice)
    assert response.text.count(": heartbeat\n\n") >= 3
    assert events[-1]["event"] == "done"


@pytest.mark.parametrize("attempt", races(12))
def test_disconnect_saves_partial_turn_and_closes_upstream(alice, upstream, attempt):
    upstream.behaviour = Behaviour(pace=0.01, tokens=500)
    keep = 1 + attempt % 4  # leave after a few tokens, at a different point each time
    conversation_id = alice.new_conversation()
    received = ""
    with stream(alice, conversation_id) as response:
        for event in sse_events(response):
            if event["event"] == "delta":
                received += event["data"]["text"]
                keep -= 1
                if keep == 0:
                    break
    assert upstream.closed_within(2.0), "the upstream request was not closed"
    turn = wait_for_answer(conversation_id)
    assert (turn.status, turn.finish_reason) == ("interrupted", "client_disconnected")
    assert turn.content.startswith(received) and len(turn.content) < len("".join(f"t{i} " for i in range(500)))
    assert Turn.objects.filter(conversation_id=conversation_id, role="assistant").count() == 1


def test_stalled_reader_that_leaves_is_saved_once(alice, upstream):
    """A client that stops reading fills the buffers; when it goes, the turn is
    still saved once and the upstream closed."""
    size = 24_000_000  # more than loopback's socket buffers can absorb
    upstream.behaviour = Behaviour(text="y" * size, piece_chars=1024)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        chunks = response.iter_raw()  # kept: dropping it would close the connection now
        next(chunks)
        time.sleep(1.0)  # read nothing while the server pushes megabytes
    assert upstream.closed_within(3.0)
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected" and 0 < len(turn.content) < size


def test_a_reader_that_stops_reading_but_stays_is_given_up_on(alice, upstream, settings):
    """Connected, reading nothing: after CHATSTREAM_READER_STALL_SECONDS with
    the model held back for it, the answer ends as client_stalled, saved,
    and the model call is closed (it would otherwise stay open for ever)."""
    settings.CHATSTREAM_READER_STALL_SECONDS = 0.5
    size = 24_000_000
    upstream.behaviour = Behaviour(text="z" * size, piece_chars=1024)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        chunks = response.iter_raw()
        next(chunks)
        turn = wait_for_answer(conversation_id, timeout=10)  # saved while the connection is still open
        assert upstream.closed_within(1.0)
    assert (turn.finish_reason, turn.status) == ("client_stalled", "interrupted") and 0 < len(turn.content) < size


@pytest.mark.parametrize(
    ("behaviour", "code", "kept"),
    [
        (Behaviour(status=500), "upstream_status", ""),
        (Behaviour(status=503), "upstream_status", ""),
        (Behaviour(status=429, retry_after="30"), "upstream_rate_limited", ""),  # too long to wait for
        (Behaviour(tokens=10, cut_after=4), "upstream_incomplete", "t0 t1 t2 t3 "),
        (Behaviour(tokens=3, finish_reason=None), "upstream_incomplete", "t0 t1 t2 "),
        (Behaviour(content_type="text/plain"), "upstream_protocol", ""),
    ],
)
def test_upstream_failures_end_in_an_error_event_and_a_saved_turn(alice, upstream, behaviour, code, kept):
    upstream.behaviour = behaviour
    conversation_id, events, _ = post_and_read(alice)
    assert events[0]["event"] == "start"
    assert events[-1]["event"] == "error" and events[-1]["data"]["code"] == code
    turn = saved_answer(conversation_id)
    assert (turn.status, turn.finish_reason, turn.error_code, turn.content) == ("failed", "error", code, kept)
    assert turn.error_detail and int(events[-1]["id"]) == len(kept)


def test_an_event_over_the_limit_ends_in_an_error_event_and_a_saved_turn(alice, upstream, settings):
    settings.LLM_MAX_EVENT_BYTES = 64 * 1024
    upstream.behaviour = Behaviour(tokens=3, huge_event=16 * 1024 * 1024)  # more than the sockets' buffers hold
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["event"] == "error" and events[-1]["data"]["code"] == "upstream_event_too_large"
    assert upstream.closed_within(1.0)  # the rest of the event is never read
    turn = saved_answer(conversation_id)
    assert (turn.status, turn.error_code, turn.content) == ("failed", "upstream_event_too_large", "t0 t1 t2 ")


def test_refused_upstream_is_an_error_event(alice, settings):
    settings.LLM_PROVIDER, settings.LLM_BASE_URL = "openai", "http://127.0.0.1:9/v1"
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["data"]["code"] == "upstream_unavailable"
    assert saved_answer(conversation_id).error_code == "upstream_unavailable"


def test_malformed_chunks_are_counted_on_the_turn(alice, upstream):
    upstream.behaviour = Behaviour(tokens=4, malformed_at=(1, 3))
    conversation_id, events, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    assert events[-1]["event"] == "done" and turn.content == "t0 t1 t2 t3 " and turn.malformed_chunks == 2


def test_no_first_token_in_time(alice, upstream, settings):
    settings.LLM_FIRST_TOKEN_TIMEOUT = 0.2
    upstream.behaviour = Behaviour(first_token_delay=5)
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["data"]["code"] == "upstream_timeout"
    assert upstream.closed_within(1.0)
    assert saved_answer(conversation_id).error_code == "upstream_timeout"


def test_silence_between_tokens(alice, upstream, settings):
    settings.LLM_IDLE_TIMEOUT = 0.2
    upstream.behaviour = Behaviour(pace=5, tokens=3)
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["data"]["code"] == "upstream_timeout"
    assert saved_answer(conversation_id).content == "t0 "


def test_usage_is_estimated_when_the_upstream_sends_none(alice, upstream):
    upstream.behaviour = Behaviour(tokens=6, cut_after=3)
    conversation_id, _, _ = post_and_read(alice)
    turn = saved_answer(conversation_id)
    # Counted by the estimate's rule (providers/estimates.py) from what came before the cut.
    assert turn.content == "t0 t1 t2 "
    assert turn.tokens_estimated and turn.tokens_out == text_tokens(turn.content) and turn.tokens_in >= 1


def test_demo_model_streams_by_default(alice, settings):
    settings.LLM_PROVIDER, settings.LLM_DEMO_FIRST_TOKEN_DELAY, settings.LLM_DEMO_TOKENS_PER_SECOND = "demo", 0, 1000
    conversation_id, events, _ = post_and_read(alice, content="What is streaming?")
    assert events[-1]["data"]["finish_reason"] == "stop"
    assert "streaming" in saved_answer(conversation_id).content


def test_many_concurrent_streams_each_saved_once(alice, upstream):
    upstream.behaviour = Behaviour(pace=0.01, tokens=40)
    ids = [alice.new_conversation() for _ in range(20)]
    texts: dict[str, str] = {}

    def run(conversation_id: str) -> None:
        with stream(alice, conversation_id) as response:
            texts[conversation_id] = text_of(read_events(response))

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected = "".join(f"t{i} " for i in range(40))
    assert all(texts[i] == expected == saved_answer(i).content for i in ids)
    assert Turn.objects.filter(role="assistant").count() == 20


def test_streams_hold_no_database_connection(alice, upstream):
    """Twenty answers streaming at once use only the few database threads'
    connections (counted on PostgreSQL, where a connection is a server process)."""
    if connection.vendor != "postgresql":
        pytest.skip("connections are counted on PostgreSQL")
    upstream.behaviour = Behaviour(first_token_delay=0.3, pace=0.05, tokens=10)
    ids = [alice.new_conversation() for _ in range(20)]
    with ExitStack() as streams:
        bodies = [streams.enter_context(stream(alice, i)).iter_raw() for i in ids]
        for body in bodies:
            next(body)  # every stream has begun
        time.sleep(0.2)
        held = connections_held()
        for body in bodies:
            for _ in body:
                pass
    # The database threads' connections and this test's own.
    assert held <= conf.CHATSTREAM_DB_THREADS + 1
    assert all(wait_for_answer(i).finish_reason == "stop" for i in ids)
