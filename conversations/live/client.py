"""One Redis client per event loop (its connections belong to the loop),
for the answers' journal and the limits. Used only when REDIS_URL is set."""

import asyncio
import weakref

import redis.asyncio as aioredis

from ..conf import conf

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = weakref.WeakKeyDictionary()


def redis_client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(conf.REDIS_URL, decode_responses=True)
    return client
