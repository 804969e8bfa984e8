"""A remote reader's watch while its answer is quiet (live/remote.py: Watch):
when Redis answers without the answer's keys (back empty after a restart),
the answer is called lost only after a lease in which neither the keys, the
saved row nor any growth of its journal showed its process alive."""

import asyncio
import uuid

import pytest

from conversations.live.remote import Watch

LEASE = 0.3  # CHATSTREAM_ANSWER_LEASE_SECONDS
LOOK_EVERY = 0.1  # a reader's quiet spell


class Keys:
    """Redis as a Watch sees it (redis.exists): the answer's keys present or not."""

    def __init__(self, listed: bool) -> None:
        self.listed = listed

    async def exists(self, key: str) -> int:
        return int(self.listed)


class Process:
    """The part of live.redis.Process a Watch uses: a journal that the
    answer's process may be writing, and keys it may have written again."""

    def __init__(self, *, listed: bool) -> None:
        self.redis = Keys(listed)
        self.entries: list[dict[str, str]] = []
        self.rejoined = 0

    def write(self, text: str) -> None:
        start = int(self.entries[-1]["e"]) if self.entries else 0
        self.entries.append({"k": "delta", "s": str(start), "e": str(start + len(text)), "d": text})

    async def journal(self, turn: str) -> list[dict[str, str]]:
        return list(self.entries)

    async def rejoin(self, turn: str) -> None:
        self.rejoined += 1


def look(process: Process, *, seconds: float, writing: bool) -> list[bool]:
    """What a reader's quiet spells decide over `seconds`: read the journal,
    then whether the answer ended; the answer's process writing an entry
    between looks if `writing`."""

    async def spells() -> list[bool]:
        watch, decisions = Watch(process, "turn"), []  # type: ignore[arg-type]
        for _ in range(round(seconds / LOOK_EVERY)):
            if writing:
                process.write("more ")
            await watch.journal()
            decisions.append(await watch.ended(uuid.uuid4()))  # no such row
            await asyncio.sleep(LOOK_EVERY)
        return decisions

    return asyncio.run(spells())


@pytest.fixture(autouse=True)
def lease(settings, transactional_db):
    settings.CHATSTREAM_ANSWER_LEASE_SECONDS = LEASE


def test_an_answer_gone_from_redis_with_a_still_journal_is_lost_after_a_lease():
    process = Process(listed=False)
    process.write("Hello")
    decisions = look(process, seconds=4 * LEASE, writing=False)
    assert not decisions[0] and decisions[-1]
    first_lost = decisions.index(True)
    assert LEASE <= first_lost * LOOK_EVERY + 0.05 <= 2 * LEASE, decisions
    assert process.rejoined  # a restart empties the answer's group too


def test_an_answer_whose_journal_grows_is_not_lost_while_its_keys_are_missing():
    # Its process writes the journal (an XADD makes the stream again in an
    # empty Redis) before its lease's next renewal writes the rest.
    decisions = look(Process(listed=False), seconds=4 * LEASE, writing=True)
    assert not any(decisions), decisions


def test_an_answer_whose_keys_are_there_is_not_lost():
    process = Process(listed=True)
    process.write("Hello")
    assert not any(look(process, seconds=3 * LEASE, writing=False))
