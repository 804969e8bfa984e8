"""The link between processes under strain: a crowd of readers joining at
once on a fresh process. On the machine's Redis, in the test process's own
database (helpers.redis_url)."""

import asyncio

import pytest

from conversations.live import redis as live_redis

from .helpers import redis_url


@pytest.fixture
def fresh_layer(settings):
    settings.REDIS_URL = redis_url()  # a new layer, without connections yet (conversations/state.py)


def test_readers_joining_a_fresh_process_at_once_wait_for_the_layers_connections(fresh_layer, settings):
    """Each remote reader joins its answer's group; 150 at once on a process
    whose layer had no connections yet used to exceed channels_redis's own
    pool (100) and cut streams with MaxConnectionsError."""
    settings.CHATSTREAM_REDIS_MAX_CONNECTIONS = 5

    async def join_all() -> int:
        process = live_redis.Process()
        await process.ready()
        try:
            turns = [f"crowd-{index}" for index in range(150)]
            inboxes = await asyncio.gather(*(process.subscribe(turn) for turn in turns))
            await asyncio.gather(
                *(process.unsubscribe(turn, inbox) for turn, inbox in zip(turns, inboxes, strict=True))
            )
            pool = process.layer.connection(0).connection_pool
            return len(pool._available_connections) + len(pool._in_use_connections)  # all it made
        finally:
            await process.close()

    assert asyncio.run(join_all()) <= 5
