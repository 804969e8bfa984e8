"""Answers being generated, wherever they run: one interface (base.py), two
implementations, chosen by REDIS_URL.

- `LocalAnswers` (local.py, the default): this process's registry. One
  process needs nothing else: a resume, a second tab or a Stop finds the
  answer in memory.
- `RedisAnswers` (redis.py): the same, across processes. Each answer's events
  also go to a journal in Redis Streams and out over the Channels layer, so
  any process can replay, follow (remote.py) or cancel an answer that another
  one is generating.
"""

import asyncio

from .. import state
from ..conf import conf
from ..stream import background
from . import client
from .base import LiveAnswer, LiveAnswers
from .local import LocalAnswers

__all__ = ["LiveAnswer", "LiveAnswers", "live_answers"]

# Tasks that use Redis (a journal being written, a slot given back) get this
# long to end before their clients are closed.
SETTLE_SECONDS = 5.0

_answers: LiveAnswers | None = None


def live_answers() -> LiveAnswers:
    global _answers
    if _answers is None:
        if conf.REDIS_URL:
            from .redis import RedisAnswers  # imports the Channels layer: only when it is used

            _answers = RedisAnswers()
        else:
            _answers = LocalAnswers()
    return _answers


@state.forgotten_when("REDIS_URL", "CHATSTREAM_REDIS_MAX_CONNECTIONS")
def forget_redis() -> None:
    """Close everything this process holds open on Redis, loop by loop: the
    tasks still using it end first, then the answers' channel and leases,
    then the client."""
    global _answers
    answers, _answers = _answers, None
    processes = getattr(answers, "processes", {})

    for loop in {*processes, *client.loops()}:

        async def close(loop: asyncio.AbstractEventLoop = loop) -> None:
            await background.settle(SETTLE_SECONDS)
            if (process := processes.pop(loop, None)) is not None:
                await process.close()
            await client.close_client()

        state.close_on_its_loop(loop, close)
    client.forget_trouble()
