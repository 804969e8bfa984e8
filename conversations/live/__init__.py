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

import functools

from ..conf import conf
from .base import LiveAnswer, LiveAnswers
from .local import LocalAnswers

__all__ = ["LiveAnswer", "LiveAnswers", "live_answers"]


@functools.cache
def live_answers() -> LiveAnswers:
    if conf.REDIS_URL:
        from .redis import RedisAnswers  # imports the Channels layer: only when it is used

        return RedisAnswers()
    return LocalAnswers()
