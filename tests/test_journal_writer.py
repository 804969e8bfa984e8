"""The process's journal writer (live/journal_writer.py) on a real Redis:
what many answers hand over while a write is on its way goes in one
pipeline, each entry in its own answer's journal and in order; an entry
Redis refuses fails its own writer only, and the next batch is written."""

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from conversations.live import keys
from conversations.live.journal_writer import JournalWriter

from .helpers import redis_url

pytestmark = pytest.mark.usefixtures("redis_ready")


class CountingRoundTrips(aioredis.Redis):
    """A client that counts its round trips: commands sent alone, and pipelines."""

    round_trips = 0

    async def execute_command(self, *args, **options):
        CountingRoundTrips.round_trips += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, *args, **kwargs):
        pipe = super().pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a, **kw):
            CountingRoundTrips.round_trips += 1
            return await execute(*a, **kw)

        pipe.execute = counted
        return pipe


async def publish(writer: JournalWriter, turn: str, pieces: int) -> None:
    """As an answer's publisher: one entry at a time, each once the last is written."""
    start = 0
    for n in range(pieces):
        text = f"{turn[-2:]}{n} "
        await writer.write(turn, {"k": "delta", "s": start, "e": start + len(text), "d": text}, refresh=n == 0)
        start += len(text)


def test_entries_of_many_answers_go_together_each_in_its_journal_in_order():
    asyncio.run(many_answers())


async def many_answers() -> None:
    client = CountingRoundTrips.from_url(redis_url(), decode_responses=True)
    writer = JournalWriter(client)
    turns = [f"writer-test-{n:02d}" for n in range(50)]
    try:
        CountingRoundTrips.round_trips = 0
        await asyncio.gather(*(publish(writer, turn, 20) for turn in turns))
        # 1,000 entries, a round trip each if written one by one; a batch
        # carries the next entry of every answer waiting.
        assert CountingRoundTrips.round_trips <= 25, CountingRoundTrips.round_trips
        for turn in turns:
            entries = [fields for _, fields in await client.xrange(keys.journal_key(turn))]
            assert [entry["d"] for entry in entries] == [f"{turn[-2:]}{n} " for n in range(20)]
            assert all(int(a["e"]) == int(b["s"]) for a, b in zip(entries, entries[1:], strict=False))
            assert 0 < await client.ttl(keys.journal_key(turn)) <= keys.alive_seconds()
    finally:
        await writer.close()
        await client.delete(*(keys.journal_key(turn) for turn in turns))
        await client.aclose()


def test_a_refused_entry_fails_only_its_own_writer_and_the_next_batch_is_written():
    asyncio.run(one_refused())


async def one_refused() -> None:
    client = aioredis.Redis.from_url(redis_url(), decode_responses=True)
    writer = JournalWriter(client)
    turn = "writer-test-failing"
    await client.set(keys.journal_key(turn), "not a stream")  # XADD to it fails: WRONGTYPE
    try:
        results = await asyncio.gather(
            writer.write(turn, {"k": "delta", "s": 0, "e": 1, "d": "a"}),
            writer.write("writer-test-fine", {"k": "delta", "s": 0, "e": 1, "d": "b"}),
            return_exceptions=True,
        )
        assert isinstance(results[0], ResponseError) and results[1] is None, results  # each by its own reply
        await client.delete(keys.journal_key(turn))
        await writer.write(turn, {"k": "delta", "s": 0, "e": 1, "d": "a"})
        assert [fields["d"] for _, fields in await client.xrange(keys.journal_key(turn))] == ["a"]
    finally:
        await writer.close()
        await client.delete(keys.journal_key(turn), keys.journal_key("writer-test-fine"))
        await client.aclose()
