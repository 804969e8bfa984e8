"""Queued messages across two real server processes (uvicorn) sharing Redis
and the test database: one whose conversation's answer dies with its process
is answered once the other has saved that answer; two answers ending at once
on two processes start the queued one once."""

import os
import signal
import threading

import pytest

from conversations.models import QueuedMessage, Turn
from harness.fake_upstream import Behaviour

from .helpers import (
    make_api_user,
    races,
    read_events,
    send,
    sse_events,
    start_event_and_a_delta,
    start_pair,
    stream,
    wait_for,
    wait_until_every_answer_is_saved,
)
from .test_while_answering import answer_of, asked

# End to end: run on one CI leg, not on the legs that vary Django, the stack or the database.
pytestmark = pytest.mark.e2e

LEASE_SECONDS = 1.0  # how soon the other process notices that an answer's process died


@pytest.fixture
def servers(tmp_path_factory, upstream_server, django_db_setup, redis_ready, transactional_db):
    a, b = start_pair(
        tmp_path_factory, upstream_server.url, "continue", CHATSTREAM_ANSWER_LEASE_SECONDS=str(LEASE_SECONDS)
    )
    with a, b:
        yield a, b
        wait_for(lambda: not QueuedMessage.objects.exists(), 10, "the queue emptied")
        wait_until_every_answer_is_saved()


def test_a_message_queued_behind_an_answer_whose_process_dies_is_answered_once(servers, upstream):
    a, b = servers
    kim = make_api_user(f"http://127.0.0.1:{a.port}", "kim")
    on_a, on_b = kim, kim.on(f"http://127.0.0.1:{b.port}")
    upstream.next_calls.extend([Behaviour(tokens=2000, pace=0.01), Behaviour(tokens=10)])
    conversation_id = on_a.new_conversation()

    with stream(on_a, conversation_id, "Long") as first:
        events = sse_events(first)
        first_id = start_event_and_a_delta(events)
        queued = send(on_b, conversation_id, "Queued", while_answering="queue")
        assert queued.status_code == 202, queued.text
        os.kill(a.pid, signal.SIGKILL)  # mid-answer: the queued message waits for an end that never comes from A

    answer = answer_of(queued.json()["answer_turn_id"], timeout=LEASE_SECONDS * 3 + 5)
    assert Turn.objects.get(pk=first_id).error_code == "process_lost"  # B saved it first, then started the next
    assert answer.finish_reason == "stop" and asked(upstream) == ["Long", "Queued"]
    followed = read_events(on_b.client.get(f"/api/turns/{answer.pk}/events"))
    assert followed[-1]["data"]["finish_reason"] == "stop"
    for api_user in (on_a, on_b):
        api_user.client.close()


@pytest.mark.parametrize("attempt", races(4))
def test_two_answers_ending_at_once_on_two_processes_start_the_queued_one_once(servers, upstream, attempt):
    a, b = servers
    lee = make_api_user(f"http://127.0.0.1:{a.port}", "lee")
    on = {"a": lee, "b": lee.on(f"http://127.0.0.1:{b.port}")}
    upstream.behaviour = Behaviour(tokens=30, pace=0.01 + attempt * 0.002)
    conversation_id = on["a"].new_conversation()
    barrier, queued = threading.Barrier(2), {}

    def answer_beside(name: str) -> None:
        with stream(on[name], conversation_id, f"Beside {name}") as response:
            events = sse_events(response)
            start_event_and_a_delta(events)
            barrier.wait()  # both streaming: now queue one
            if name == "a":
                queued.update(send(on["a"], conversation_id, "Queued", while_answering="queue").json())
            list(events)

    threads = [threading.Thread(target=answer_beside, args=(name,)) for name in on]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    answer = answer_of(queued["answer_turn_id"])
    assert answer.finish_reason == "stop"
    assert sorted(asked(upstream)) == ["Beside a", "Beside b", "Queued"]  # one model call for it
    assert Turn.objects.filter(conversation_id=conversation_id, content="Queued").count() == 1
    for api_user in on.values():
        api_user.client.close()
