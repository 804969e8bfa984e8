"""Resume: GET /api/turns/<id>/events after a dropped connection, from a live
answer or a saved one, with no text missing or repeated."""

import json
import threading

import pytest

from conversations.models import Conversation, Turn
from harness.fake_upstream import Behaviour

from .helpers import (
    post_with_key,
    races,
    read_events,
    read_until_deltas,
    saved_answer,
    sse_events,
    stream,
    text_and_final,
    wait_for_answer,
)


@pytest.mark.parametrize("dropped_after", [1, 3, 7, 20])
def test_a_dropped_client_resumes_from_its_last_event(alice, upstream, settings, dropped_after):
    settings.CHATSTREAM_ON_DISCONNECT = "continue"
    upstream.behaviour = Behaviour(pace=0.01, tokens=60)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        turn_id, before, last_id = read_until_deltas(sse_events(response), dropped_after)
    assert last_id == len(before)  # an event id is the answer's length after it

    resumed = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": str(last_id)})
    events = read_events(resumed)
    after, final = text_and_final(events)
    assert events[0]["event"] != "start"  # the client had it
    assert final["event"] == "done" and final["data"]["finish_reason"] == "stop"
    assert before + after == saved_answer(conversation_id).content  # nothing missing, nothing twice
    assert all(int(e["id"]) > last_id for e in events if e["event"] == "delta")


@pytest.mark.parametrize("after", [0, 5, 9])
def test_a_saved_answer_is_replayed_from_the_database(alice, upstream, after):
    upstream.behaviour = Behaviour(tokens=3)  # "t0 t1 t2 ": 9 characters
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        live = read_events(response)
    turn_id = live[0]["data"]["turn_id"]

    replay = read_events(alice.client.get(f"/api/turns/{turn_id}/events", params={"after": after}))
    text, final = text_and_final(replay)
    assert text == "t0 t1 t2 "[after:]
    assert final == live[-1]  # the same `done`, with the same id
    assert (replay[0] == live[0]) == (after == 0)  # `start` only for a reader from the beginning

    ndjson = alice.client.get(
        f"/api/turns/{turn_id}/events", params={"after": after}, headers={"Accept": "application/x-ndjson"}
    )
    assert ndjson.headers["Content-Type"] == "application/x-ndjson"
    assert json.loads(ndjson.text.splitlines()[-1])["type"] == "done"


def test_a_second_reader_follows_a_live_answer(alice, upstream):
    upstream.behaviour = Behaviour(pace=0.01, tokens=80)
    conversation_id = alice.new_conversation()
    second: dict = {}
    with stream(alice, conversation_id) as response:
        events = sse_events(response)
        turn_id, first_text, _ = read_until_deltas(events, 2)

        def follow() -> None:
            second["events"] = read_events(alice.client.get(f"/api/turns/{turn_id}/events"))

        reader = threading.Thread(target=follow)
        reader.start()
        rest = list(events)
        reader.join(timeout=10)
    saved = saved_answer(conversation_id).content
    assert first_text + text_and_final(rest)[0] == saved
    text, final = text_and_final(second["events"])
    assert second["events"][0]["event"] == "start" and text == saved and final["event"] == "done"


def test_continue_mode_cancels_when_nobody_comes_back(alice, upstream, settings):
    settings.CHATSTREAM_ON_DISCONNECT = "continue"
    settings.CHATSTREAM_RESUME_GRACE_SECONDS = 0.3
    upstream.behaviour = Behaviour(pace=0.02, tokens=1000)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        read_until_deltas(sse_events(response), 2)
    assert not upstream.closed_within(0.15)  # still generating for a reader to come back
    turn = wait_for_answer(conversation_id, timeout=5)
    assert turn.finish_reason == "cancelled" and upstream.closed_within(1.0)


def test_resume_refuses_foreign_unknown_and_malformed(alice, bob, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        turn_id = read_events(response)[0]["data"]["turn_id"]
    assert bob.client.get(f"/api/turns/{turn_id}/events").status_code == 404
    assert alice.client.get("/api/turns/nope/events").status_code == 404
    bad = alice.client.get(f"/api/turns/{turn_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_event_id"


def test_a_repeated_message_gets_the_first_answer(alice, upstream):
    upstream.behaviour = Behaviour(tokens=5)
    conversation_id = alice.new_conversation()
    first = post_with_key(alice, conversation_id, "message-1")
    again = post_with_key(alice, conversation_id, "message-1")
    assert again[0]["data"]["turn_id"] == first[0]["data"]["turn_id"]
    assert text_and_final(again) == text_and_final(first)
    assert len(upstream.calls) == 1
    post_with_key(alice, conversation_id, "message-2")  # a new key is a new message
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("attempt", races(3))
def test_the_same_message_twice_at_once_starts_one_answer(alice, upstream, attempt):
    upstream.behaviour = Behaviour(pace=0.01, tokens=30)
    conversation_id = alice.new_conversation()
    results: list[list[dict]] = []
    start = threading.Barrier(2)

    def post() -> None:
        start.wait()
        results.append(post_with_key(alice, conversation_id, "double-click"))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert len(results) == 2 and len(upstream.calls) == 1
    assert results[0][0]["data"]["turn_id"] == results[1][0]["data"]["turn_id"]
    assert text_and_final(results[0])[0] == text_and_final(results[1])[0] == saved_answer(conversation_id).content
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 2
    assert Conversation.objects.get(pk=conversation_id).next_position == 2  # no position lost to the repeat


def test_the_conversation_names_answers_still_being_generated(alice, upstream):
    upstream.behaviour = Behaviour(pace=0.01, tokens=50)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        events = sse_events(response)
        turn_id, _, _ = read_until_deltas(events, 1)
        during = alice.client.get(f"/api/conversations/{conversation_id}").json()
        assert list(events)[-1]["event"] == "done"
    assert during["generating"] == [{"turn_id": turn_id, "position": 1}]
    assert alice.client.get(f"/api/conversations/{conversation_id}").json()["generating"] == []
