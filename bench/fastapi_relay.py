"""A FastAPI relay: the peer every target of bench/targets.py is a ratio to.

The stack most teams reach for first, written as its tutorials write it: a
pydantic body, one shared `httpx.AsyncClient`,
httpx-sse for the upstream's events and sse-starlette's
`EventSourceResponse` over an async generator. Like the plain Django relay
(bench/plain_relay.py) it has no auth and no database and saves nothing, and
its connection pool has no cap: the most favourable peer, so the app's
ratios to it are conservative. bench/rig.py runs it under the app's server,
on the app's CPU, behind the same upstream.

    PLAIN_UPSTREAM_URL=http://127.0.0.1:9100/v1 uvicorn bench.fastapi_relay:app
"""

import json
import os
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from httpx_sse import aconnect_sse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

# Module-level rather than in a lifespan: daphne, the other server the bench
# runs, has no lifespan events.
upstream = httpx.AsyncClient(
    base_url=os.environ["PLAIN_UPSTREAM_URL"],  # e.g. http://127.0.0.1:9100/v1
    timeout=httpx.Timeout(10.0, read=None),  # an answer may pause for as long as the model thinks
    limits=httpx.Limits(max_connections=None),
)
app = FastAPI()


class Message(BaseModel):
    content: str


async def relay_answer(content: str) -> AsyncIterator[dict]:
    """The upstream's chunks as `delta` events, then one `done` event."""
    body = {
        "model": "fake",
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens, finish_reason = 0, None
    async with aconnect_sse(upstream, "POST", "/chat/completions", json=body) as events:
        async for event in events.aiter_sse():
            if event.data == "[DONE]":
                break
            choices = event.json()["choices"]
            if not choices:  # the usage chunk
                continue
            if text := choices[0]["delta"].get("content"):
                tokens += 1
                yield {"event": "delta", "data": json.dumps({"text": text})}
            finish_reason = choices[0].get("finish_reason") or finish_reason
    yield {"event": "done", "data": json.dumps({"finish_reason": finish_reason, "usage": {"tokens_out": tokens}})}


@app.post("/relay")
async def relay(message: Message) -> EventSourceResponse:
    return EventSourceResponse(relay_answer(message.content))
