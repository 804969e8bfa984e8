"""A message sent while an answer streams in its conversation
("while_answering", CHATSTREAM_WHILE_ANSWERING): queued (202, answered when
that answer ends, followed meanwhile at api/turns/<id>/events, taken back
with DELETE), interrupting it, refused, or (the default) answered beside it.
Against the app under a real ASGI server and the fake upstream, slowed so
that the first answer is still streaming."""

import asyncio

import pytest

from conversations.conf import conf
from conversations.models import Budget, QueuedMessage, Turn
from conversations.queued import rows
from conversations.queued.starting import start_next
from conversations.views import api
from harness.fake_upstream import Behaviour

from .helpers import (
    ApiUser,
    answer_of,
    asked,
    events_of,
    races,
    read_events,
    read_until_deltas,
    send,
    sse_events,
    start_event_and_a_delta,
    stream,
    text_of,
    wait_for,
    wait_until_every_answer_is_saved,
)

SLOW = Behaviour(pace=0.02, tokens=60)  # about 1.2 s: the answer in progress


@pytest.fixture(autouse=True)
def every_queued_message_answered(transactional_db):
    """Afterwards, the queue is empty and every answer saved before the
    database is emptied (a save under the flush's TRUNCATE deadlocks)."""
    yield
    wait_for(lambda: not QueuedMessage.objects.exists(), 10, "the queue emptied")
    wait_until_every_answer_is_saved()


def queue(api_user: ApiUser, conversation_id: str, content: str, **body) -> dict:
    response = send(api_user, conversation_id, content, while_answering="queue", **body)
    assert response.status_code == 202, response.text
    return response.json()


def queued_directly(api_user: ApiUser, conversation_id: str, *, trace_id: str) -> QueuedMessage:
    """A message "Queued" put in the queue as a message sent while an answer
    streams is, with nothing started to answer it."""
    return rows.enqueue(
        owner=api_user.user,
        conversation_id=conversation_id,
        content="Queued",
        model_name="",
        instructions={},
        file_ids=[],
        idempotency_key="",
        trace_id=trace_id,
    )


def test_a_queued_message_is_answered_after_the_answer_in_progress_in_order(alice, upstream):
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        first_id = start_event_and_a_delta(events)
        second, third = queue(alice, conversation_id, "Second"), queue(alice, conversation_id, "Third")
        detail = alice.client.get(f"/api/conversations/{conversation_id}").json()
        assert [queued["turn_id"] for queued in detail["queued"]] == [second["turn_id"], third["turn_id"]]
        assert {queued["status"] for queued in detail["queued"]} == {"queued"}
        assert [answer["turn_id"] for answer in detail["generating"]] == [first_id]
        assert len(upstream.calls) == 1  # nothing else is answered while the first streams
        assert list(events)[-1]["data"]["finish_reason"] == "stop"

    third_answer = answer_of(third["answer_turn_id"])
    second_answer = Turn.objects.get(pk=second["answer_turn_id"])
    assert (second_answer.finish_reason, third_answer.finish_reason) == ("stop", "stop")
    assert asked(upstream) == ["First", "Second", "Third"]
    assert second_answer.parent == Turn.objects.get(pk=second["turn_id"]).pk
    # Each follows the one before it on the branch: the third's question comes after the second's answer.
    assert Turn.objects.get(pk=third["turn_id"]).parent == second_answer.pk
    assert any(m["content"] == second_answer.content for m in upstream.calls[2].body["messages"])
    after = alice.client.get(f"/api/conversations/{conversation_id}").json()
    assert after["queued"] == [] and after["leaf"] == third["answer_turn_id"]


def test_a_queued_answer_is_followed_from_the_queue_to_its_end(alice, upstream, settings):
    settings.CHATSTREAM_HEARTBEAT_SECONDS = 0.1
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        queued = queue(alice, conversation_id, "Second")
        with alice.client.stream("GET", f"/api/turns/{queued['answer_turn_id']}/events") as follower:
            assert follower.status_code == 200
            lines = follower.iter_lines()
            waiting = [next(lines) for _ in range(6)]  # the opening, then heartbeats while the first streams
            assert sum(line == ": heartbeat" for line in waiting) >= 2, waiting
            assert not Turn.objects.filter(pk=queued["turn_id"]).exists()
            list(events)
            raw = "\n".join(lines)
    events = events_of(raw.encode() + b"\n\n")
    answer = answer_of(queued["answer_turn_id"])
    assert events[0]["event"] == "start" and events[0]["data"]["turn_id"] == queued["answer_turn_id"]
    assert text_of(events) == answer.content and events[-1]["data"]["finish_reason"] == "stop"


def test_a_queued_message_taken_back_before_it_starts_is_never_answered(alice, bob, upstream):
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        queued = queue(alice, conversation_id, "Second")
        with alice.client.stream("GET", f"/api/turns/{queued['answer_turn_id']}/events") as follower:
            assert bob.client.delete(f"/api/turns/{queued['turn_id']}").status_code == 404  # not his
            assert alice.client.delete(f"/api/turns/{queued['turn_id']}").status_code == 204
            ended = read_events(follower)
        list(events)

    assert ended[-1]["event"] == "error" and ended[-1]["data"]["code"] == "message_cancelled"
    assert alice.client.get(f"/api/conversations/{conversation_id}").json()["queued"] == []
    assert alice.client.delete(f"/api/turns/{queued['turn_id']}").status_code == 404
    assert alice.client.get(f"/api/turns/{queued['answer_turn_id']}/events").status_code == 404
    wait_for(lambda: Turn.objects.filter(conversation_id=conversation_id).count() == 2, 5, "the first answer saved")
    assert asked(upstream) == ["First"] and not QueuedMessage.objects.exists()
    assert not Turn.objects.filter(pk__in=[queued["turn_id"], queued["answer_turn_id"]]).exists()


def test_a_queued_message_that_has_started_cannot_be_taken_back(alice, upstream):
    upstream.next_calls.extend([Behaviour(pace=0.01, tokens=20), SLOW])
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        queued = queue(alice, conversation_id, "Second")
        list(events)
    wait_for(lambda: len(upstream.calls) == 2, 5, "the queued message's answer started")
    refused = alice.client.delete(f"/api/turns/{queued['answer_turn_id']}")  # by its answer's id too
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "turn_started"
    assert answer_of(queued["answer_turn_id"]).finish_reason == "stop"


def test_a_queued_message_whose_budget_was_spent_meanwhile_gets_an_error_answer(
    alice, upstream, fresh_prices, settings
):
    # The first message's reservation (its prompt and 10 tokens out) fits; once it is
    # saved, what it used leaves no room for the second's.
    settings.CHATSTREAM_RESERVE_TOKENS = 10
    Budget.objects.create(user=alice.user, period=Budget.Period.DAY, max_tokens=40)
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        queued = queue(alice, conversation_id, "Second")  # the first is not saved yet: only reserved
        list(events)

    answer = answer_of(queued["answer_turn_id"])
    assert (answer.status, answer.error_code) == ("failed", "budget_exceeded")
    assert Turn.objects.get(pk=queued["turn_id"]).content == "Second" and asked(upstream) == ["First"]
    replayed = read_events(alice.client.get(f"/api/turns/{queued['answer_turn_id']}/events"))
    assert replayed[-1]["event"] == "error" and replayed[-1]["data"]["code"] == "budget_exceeded"


def test_a_message_sent_while_nothing_streams_is_answered_at_once_whatever_it_asks(alice, upstream):
    conversation_id = alice.new_conversation()
    for choice in ("queue", "interrupt", "reject"):
        response = send(alice, conversation_id, choice, while_answering=choice)
        assert response.status_code == 200 and read_events(response)[-1]["event"] == "done"
    assert asked(upstream) == ["queue", "interrupt", "reject"]


def test_interrupt_stops_the_answer_in_progress_then_answers(alice, upstream):
    upstream.next_calls.append(Behaviour(pace=0.02, tokens=500))
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        first_id, before, _ = read_until_deltas(events, 3)
        second = send(alice, conversation_id, "Second", while_answering="interrupt")
        rest = list(events)

    assert rest[-1]["event"] == "done" and rest[-1]["data"]["finish_reason"] == "cancelled"
    stopped = Turn.objects.get(pk=first_id)
    assert (stopped.finish_reason, stopped.status) == ("cancelled", "interrupted")
    assert stopped.content == before + text_of(rest) and len(stopped.content) < 500 * 4  # what it streamed
    assert second.status_code == 200
    second_events = read_events(second)
    assert second_events[-1]["data"]["finish_reason"] == "stop"
    assert Turn.objects.get(pk=second_events[0]["data"]["turn_id"]).finish_reason == "stop"
    assert asked(upstream) == ["First", "Second"]


def test_reject_refuses_the_message_and_saves_nothing(alice, upstream):
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        refused = send(alice, conversation_id, "Second", while_answering="reject")
        before_end = Turn.objects.filter(conversation_id=conversation_id).count()
        list(events)

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "answer_in_progress"
    assert before_end == 1  # the first's question: nothing of the second
    assert not QueuedMessage.objects.exists() and asked(upstream) == ["First"]


def test_by_default_a_message_is_answered_beside_the_answer_in_progress(alice, upstream, settings):
    del settings.CHATSTREAM_WHILE_ANSWERING  # the app's own default: today's behaviour
    assert conf.CHATSTREAM_WHILE_ANSWERING == "parallel"
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        second = send(alice, conversation_id, "Second")  # read whole while the first still streams
        assert len(upstream.calls) == 2 and not first.is_closed
        list(events)
    assert second.status_code == 200 and read_events(second)[-1]["data"]["finish_reason"] == "stop"


def test_the_setting_chooses_for_a_message_that_does_not_say(alice, upstream, settings):
    settings.CHATSTREAM_WHILE_ANSWERING = "queue"
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        queued = send(alice, conversation_id, "Second")
        beside = send(alice, conversation_id, "Third", while_answering="parallel")  # the message's own choice wins
        list(events)
    assert queued.status_code == 202 and beside.status_code == 200
    assert answer_of(queued.json()["answer_turn_id"]).finish_reason == "stop"


def test_a_choice_that_is_not_one(alice, upstream):
    conversation_id = alice.new_conversation()
    refused = send(alice, conversation_id, "Hello", while_answering="later")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_while_answering"
    assert not Turn.objects.exists()


@pytest.mark.parametrize("body", [{"content": "Queued"}, {"content": "Queued", "model": "no-such-model"}])
def test_a_queued_message_is_checked_when_it_is_sent(alice, upstream, body):
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        response = alice.client.post(
            f"/api/conversations/{conversation_id}/messages", json={**body, "while_answering": "queue"}
        )
        list(events)
    expected = 202 if "model" not in body else 404
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("attempt", races(5))
def test_starts_racing_for_one_queued_message_start_it_once(alice, live, upstream, attempt):
    conversation_id = alice.new_conversation()
    queued = queued_directly(alice, conversation_id, trace_id="race")

    async def several_at_once() -> None:
        await asyncio.gather(*(start_next(queued.conversation_id) for _ in range(4)))

    live.run(several_at_once())  # nothing in progress: each finds the message and tries to claim it
    assert answer_of(str(queued.answer_id)).finish_reason == "stop"
    assert asked(upstream) == ["Queued"]
    assert Turn.objects.filter(conversation_id=conversation_id).count() == 2


def test_a_queued_message_takes_the_slot_the_answer_before_it_gave_back(alice, upstream, settings):
    settings.CHATSTREAM_MAX_CONCURRENT_STREAMS = 1  # the one answer at once the user may have
    upstream.next_calls.append(SLOW)
    conversation_id = alice.new_conversation()
    with stream(alice, conversation_id, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        queued = queue(alice, conversation_id, "Second")
        list(events)
    assert answer_of(queued["answer_turn_id"]).finish_reason == "stop"  # not `too_many_streams`


def test_only_an_answer_in_the_same_conversation_counts(alice, upstream):
    upstream.next_calls.append(SLOW)
    streaming, other = alice.new_conversation(), alice.new_conversation()
    with stream(alice, streaming, "First") as first:
        events = sse_events(first)
        start_event_and_a_delta(events)
        elsewhere = send(alice, other, "Elsewhere", while_answering="reject")
        assert elsewhere.status_code == 200 and read_events(elsewhere)[-1]["data"]["finish_reason"] == "stop"
        list(events)
    assert asked(upstream) == ["First", "Elsewhere"]


def test_a_conversation_read_as_its_queued_message_starts_shows_the_message(alice, upstream, monkeypatch):
    # The message starts after the page's read of the turns and before its
    # read of the queue, as when a tab refreshes because the answer before
    # it ended: it must show in one of them, never in neither.
    upstream.behaviour = Behaviour(pace=0.05, tokens=20)
    conversation_id = alice.new_conversation()
    queued = queued_directly(alice, conversation_id, trace_id="between-reads")
    answers = api.live_answers()

    class StartingWhileRead:
        async def generating_in(self, conversation):
            await start_next(conversation)  # between the turns and the queue
            return await answers.generating_in(conversation)

    monkeypatch.setattr(api, "live_answers", StartingWhileRead)
    detail = alice.client.get(f"/api/conversations/{conversation_id}").json()
    monkeypatch.undo()

    questions = [turn["content"] for turn in detail["turns"] if turn["role"] == "user"]
    assert questions == ["Queued"] and not detail["queued"], detail
    assert [answer["turn_id"] for answer in detail["generating"]] == [str(queued.answer_id)]
    assert answer_of(str(queued.answer_id)).finish_reason == "stop"
