"""Stop from another request: POST /api/turns/<id>/cancel."""

import pytest

from harness.fake_upstream import Behaviour

from .helpers import races, read_events, saved_answer, sse_events, start_event_and_a_delta, stream, wait_for_answer


@pytest.mark.parametrize("attempt", races(10))
def test_cancel_closes_the_upstream_and_ends_the_stream(alice, upstream, attempt):
    upstream.behaviour = Behaviour(pace=0.01 + attempt * 0.002, tokens=1000)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        events = sse_events(response)
        turn_id = start_event_and_a_delta(events)
        cancelled = alice.client.post(f"/api/turns/{turn_id}/cancel")
        rest = list(events)

    assert upstream.closed_within(0.2)
    assert cancelled.status_code == 200
    result = cancelled.json()
    assert (result["turn_id"], result["finish_reason"]) == (turn_id, "cancelled")
    assert 0 <= result["cancel_latency_ms"] < 200 and result["tokens_after_cancel"] == 0
    assert rest[-1]["event"] == "done" and rest[-1]["data"]["finish_reason"] == "cancelled"
    turn = saved_answer(conversation_id)
    assert (str(turn.pk), turn.finish_reason, turn.status) == (turn_id, "cancelled", "interrupted")
    assert turn.cancel_latency_ms == result["cancel_latency_ms"] and 0 < len(turn.content) < 1000 * 4


def test_a_client_leaving_records_the_cancel_latency_too(alice, upstream):
    upstream.behaviour = Behaviour(pace=0.01, tokens=1000)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        start_event_and_a_delta(sse_events(response))
    assert upstream.closed_within(1.0)
    turn = wait_for_answer(conversation_id)
    assert turn.finish_reason == "client_disconnected" and turn.cancel_latency_ms is not None


def test_cancel_of_a_foreign_unknown_or_finished_turn(alice, bob, upstream):
    upstream.behaviour = Behaviour(tokens=2)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id) as response:
        events = read_events(response)
    turn_id = events[0]["data"]["turn_id"]

    finished = alice.client.post(f"/api/turns/{turn_id}/cancel")
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "turn_finished"
    assert bob.client.post(f"/api/turns/{turn_id}/cancel").status_code == 404
    assert alice.client.post("/api/turns/not-a-turn/cancel").json()["error"]["code"] == "turn_not_found"
    assert alice.client.get(f"/api/turns/{turn_id}/cancel").status_code == 405
