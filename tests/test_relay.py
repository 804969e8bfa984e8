"""The relay's life cycle, driven directly: cancellation at any await leaves
exactly one saved turn."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from conversations import answering
from conversations.models import Turn
from conversations.providers import TEXT, Completion, Message, Piece, Provider
from conversations.storage.threads import run_db
from conversations.stream.answer import PreparedTurn
from conversations.stream.events import DELTA, DONE, HEARTBEAT, START
from conversations.stream.readers import Readers
from conversations.stream.relay import AnswerRelay
from conversations.views.streaming import AnswerStreamResponse

from .helpers import races, start_turn


class PacedProvider(Provider):
    """Yields `count` tokens, `pace` seconds apart."""

    name = "paced"

    def __init__(self, *, count: int, pace: float) -> None:
        super().__init__(model="paced-1")
        self.count, self.pace = count, pace
        self.closed = False

    async def stream(self, messages: list[Message], completion: Completion) -> AsyncIterator[list[Piece]]:
        try:
            for index in range(self.count):
                await asyncio.sleep(self.pace)
                yield [(TEXT, f"w{index} ")]
            completion.finish_reason = "stop"
        finally:
            self.closed = True


@pytest.fixture
def prepared(owner, conversation, transactional_db) -> PreparedTurn:
    """A message saved and its answer prepared, committed: the relay saves
    the answer on a database thread."""
    return start_turn(owner=owner, conversation_id=conversation.pk, content="q")


def relay_for(prepared, provider) -> AnswerRelay:
    return answering.answer_relay(prepared, provider=provider, trace_id="t", received_at=0.0)


async def read(relay: AnswerRelay, deltas: int, heartbeat: float = 10) -> list[tuple]:
    """Follow the relay like a response would, stopping after `deltas` deltas."""
    events = []
    try:
        async for event in relay.follow(heartbeat):
            events.append(event)
            if event[0] == DELTA and sum(e[0] == DELTA for e in events) == deltas:
                return events
    finally:
        await relay.close()
    return events


def saved_answers(prepared) -> list[Turn]:
    return list(Turn.objects.filter(conversation_id=prepared.conversation_id, role="assistant"))


@pytest.mark.parametrize("attempt", races(20))
def test_cancelled_twice_still_saves_once(prepared, attempt):
    provider = PacedProvider(count=1000, pace=0.002)

    async def scenario():
        relay = relay_for(prepared, provider)
        relay.start()
        reader = asyncio.create_task(read(relay, deltas=10_000))
        await asyncio.sleep(0.01 + attempt * 0.003)
        reader.cancel()  # the client is gone...
        await asyncio.sleep(attempt * 0.0005)
        reader.cancel()  # ...and the server cancels again while the turn is saved
        with pytest.raises(asyncio.CancelledError):
            await reader
        async with asyncio.timeout(5):
            await relay._task

    asyncio.run(scenario())
    (turn,) = saved_answers(prepared)
    assert turn.finish_reason == "client_disconnected" and provider.closed
    assert turn.content == "".join(f"w{i} " for i in range(len(turn.content.split())))


def test_a_reader_that_falls_behind_gets_tokens_together(prepared):
    async def scenario():
        relay = relay_for(prepared, PacedProvider(count=50, pace=0))
        relay.start()
        events = []
        async for event in relay.follow(heartbeat=10):
            events.append(event)
            await asyncio.sleep(0.01)  # a slow client
        return events

    events = asyncio.run(scenario())
    kinds = [kind for kind, _, _ in events]
    assert kinds[0] == START and kinds[-1] == DONE and kinds.count(DELTA) < 50
    assert "".join(data for kind, data, _ in events if kind == DELTA) == saved_answers(prepared)[0].content


def test_heartbeat_events_during_silence(prepared):
    async def scenario():
        relay = relay_for(prepared, PacedProvider(count=1, pace=0.2))
        relay.start()
        return await read(relay, deltas=99, heartbeat=0.03)

    events = asyncio.run(scenario())
    assert [kind for kind, _, _ in events].count(HEARTBEAT) >= 3
    assert events[-1][0] == DONE


def test_cancel_from_the_server_side_is_recorded(prepared):
    async def scenario():
        relay = relay_for(prepared, PacedProvider(count=100, pace=0.01))
        relay.start()
        await asyncio.sleep(0.05)
        relay.cancel()
        return [event async for event in relay.follow(heartbeat=10)]

    events = asyncio.run(scenario())
    assert events[-1][0] == DONE and events[-1][1]["finish_reason"] == "cancelled"
    assert saved_answers(prepared)[0].status == "interrupted"


def test_the_final_event_follows_the_save(prepared):
    async def scenario():
        relay = relay_for(prepared, PacedProvider(count=3, pace=0))
        relay.start()
        async for kind, _, _ in relay.follow(heartbeat=10):
            if kind == DONE:
                return await run_db(saved_answers, prepared)

    assert len(asyncio.run(scenario())) == 1


@pytest.mark.parametrize("reason", ["cancelled", "client_disconnected"])
def test_cancel_before_the_task_first_runs_still_saves(prepared, reason):
    provider = PacedProvider(count=10, pace=0.01)

    async def scenario():
        relay = relay_for(prepared, provider)
        relay.start()
        relay.cancel(reason)  # before the task has taken its first step
        await relay.close()

    asyncio.run(scenario())
    (turn,) = saved_answers(prepared)
    assert (turn.finish_reason, turn.content) == (reason, "")


def test_a_response_closed_unread_cancels_its_answer(prepared):
    """Django closes a response whose client left before its body was read;
    that alone stops the model and saves the turn."""
    provider = PacedProvider(count=1000, pace=0.01)

    async def scenario():
        relay = relay_for(prepared, provider)
        relay.start()
        response = AnswerStreamResponse(relay, iter(()), content_type="text/event-stream")
        await asyncio.sleep(0.05)
        await asyncio.to_thread(response.close)  # as Django does, on a thread
        async with asyncio.timeout(5):
            await relay.close()

    asyncio.run(scenario())
    (turn,) = saved_answers(prepared)
    assert turn.finish_reason == "client_disconnected" and provider.closed


def test_a_message_abandoned_while_saved_gets_an_empty_answer(owner, conversation, transactional_db):
    """The client left during the message's save: the message stays, and so
    does an empty answer marked as the client's doing; the model is not called."""

    async def scenario():
        start = asyncio.ensure_future(run_db(start_turn, owner=owner, conversation_id=conversation.pk, content="q"))
        await answering.answer_abandoned(start, "t", 0.0)

    asyncio.run(scenario())
    rows = Turn.objects.filter(conversation=conversation).values_list("role", "content", "finish_reason")
    assert list(rows) == [("user", "q", ""), ("assistant", "", "client_disconnected")]


@pytest.mark.parametrize("attempt", races(10))
def test_a_reader_cancelled_mid_wait_does_not_disturb_another(prepared, attempt):
    async def scenario():
        relay = relay_for(prepared, PacedProvider(count=40, pace=0.002))
        relay.start()

        async def collect() -> list:
            return [event async for event in relay.follow(heartbeat=10)]

        leaving = asyncio.create_task(collect())
        staying = asyncio.create_task(collect())
        await asyncio.sleep(0.005 + attempt * 0.003)
        leaving.cancel()  # the other reader keeps the answer alive (relay.close is not called here)
        return await staying

    events = asyncio.run(scenario())
    text = "".join(data for kind, data, _ in events if kind == DELTA)
    assert events[-1][0] == DONE and text == saved_answers(prepared)[0].content == "".join(f"w{i} " for i in range(40))


def test_readers_here_get_only_what_the_journal_holds():
    """With Redis, a client in the generating process is given text only
    once the journal holds it: a process killed then loses nothing it saw."""

    async def scenario() -> None:
        readers = Readers(start=("start", {}, 0), on_attach=lambda: None)
        readers.hold_until_journaled()
        follower = readers.follow(None)
        assert (await anext(follower))[0] == "start"
        readers.append("Hello, ")
        readers.append("world")
        waiting = asyncio.ensure_future(anext(follower))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # nothing journaled yet
        readers.journaled(5)
        assert await waiting == (DELTA, "Hello", 5)
        readers.journaled(None)  # the journal failed: the hold is lifted
        assert await anext(follower) == (DELTA, ", world", 12)
        await follower.aclose()

    asyncio.run(scenario())
