"""Queued messages across real server processes (uvicorn): two sharing Redis
and the test database, where one whose conversation's answer dies with its
process is answered once the other has saved that answer, and two answers
ending at once on two processes start the queued one once; and one process
without Redis, killed and started again, which answers the queued message
once it has saved the lost answer."""

import os
import signal
import threading

import pytest

from conversations.models import QueuedMessage, Turn
from harness import stacks
from harness.fake_upstream import Behaviour
from harness.servers import PYTHON, Service, free_port

from .helpers import (
    answer_of,
    asked,
    make_api_user,
    process_env,
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


@pytest.mark.parametrize("woken_by", ["a request", "the start-up"])
def test_a_queued_message_outlives_its_process_without_redis(
    tmp_path, upstream_server, upstream, transactional_db, settings, woken_by
):
    if woken_by == "the start-up" and not stacks.uses_opt_in_handler(settings.STACK):
        pytest.skip("Django's own handler has no lifespan: the first request looks at the queue")
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", "harness.asgi:application", "--port", str(port), "--lifespan", "off"]
    env = process_env(upstream_server.url, REDIS_URL="")
    ann = make_api_user(f"http://127.0.0.1:{port}", "ann")
    upstream.next_calls.extend([Behaviour(tokens=2000, pace=0.01), Behaviour(tokens=10)])
    with Service("server", argv, port, log_dir=tmp_path, env=env) as server:
        conversation_id = ann.new_conversation()
        with stream(ann, conversation_id, "Long") as first:
            events = sse_events(first)
            first_id = start_event_and_a_delta(events)
            queued = send(ann, conversation_id, "Queued", while_answering="queue").json()
            os.kill(server.pid, signal.SIGKILL)  # no end will come for the first answer

    argv[-1] = "on" if woken_by == "the start-up" else "off"
    with Service("server again", argv, port, log_dir=tmp_path, env=env):
        if woken_by == "a request":  # the page reloaded: its first request finds the message waiting
            followed = read_events(ann.client.get(f"/api/turns/{queued['answer_turn_id']}/events"))
            assert followed[-1]["data"]["finish_reason"] == "stop"
        answer = answer_of(queued["answer_turn_id"])
        assert Turn.objects.get(pk=first_id).error_code == "process_lost"
        assert answer.finish_reason == "stop" and asked(upstream) == ["Long", "Queued"]
    ann.client.close()
