"""The Redis keys of erased answers deleted: their journals (kept a minute
after an answer ends, for readers racing the end) and what describes an
answer still listed. Sync, with a client of its own, so the worker and the
views use it alike; without REDIS_URL there is nothing to delete.

Failing here is logged, not raised: the rows are gone already, and every
one of these keys expires by itself (live/keys.alive_seconds)."""

import logging
from collections.abc import Iterable

from ..conf import conf
from ..live import keys

logger = logging.getLogger(__name__)

KEYS_PER_DELETE = 500


def answer_keys(turn_ids: Iterable[object], conversation_ids: Iterable[object]) -> list[str]:
    names = [name for turn in map(str, turn_ids) for name in (keys.journal_key(turn), keys.meta_key(turn))]
    return names + [keys.generating_key(str(conversation)) for conversation in conversation_ids]


def forget_answers(turn_ids: Iterable[object], conversation_ids: Iterable[object]) -> int:
    """Delete the Redis keys of these turns and conversations; how many existed."""
    if not conf.REDIS_URL:
        return 0
    import redis  # only with REDIS_URL set

    names = answer_keys(turn_ids, conversation_ids)
    client = redis.Redis.from_url(conf.REDIS_URL, socket_timeout=5)
    try:
        return sum(client.delete(*names[i : i + KEYS_PER_DELETE]) for i in range(0, len(names), KEYS_PER_DELETE))
    except redis.RedisError as exc:
        logger.error(
            "Redis (REDIS_URL): the journals of %d erased turns were not deleted (%s); they expire", len(names), exc
        )
        return 0
    finally:
        client.close()
