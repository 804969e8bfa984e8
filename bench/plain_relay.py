"""A plain Django relay: the second baseline of bench/relay.py.

The product issue sets absolute targets and says "a plain Django or FastAPI
relay manages about 50 streams and 0.2 CPU seconds per 1,000 tokens on the
same machine". The machine's speed varies from day to day, so the bench runs
this relay beside the app in the same run and reads the targets as ratios too.

It is written the way a tutorial writes one: `settings.configure()`, one async
view, a shared `httpx.AsyncClient`, httpx-sse for the upstream's events and a
`StreamingHttpResponse` over an async generator, CommonMiddleware only. It
has no auth, no database and saves nothing, and its connection pool has no
cap (a tutorial's default of 100 would queue streams past 100): it is the
most favourable "plain" relay, which keeps the app's ratios to it
conservative. bench/rig.py runs it under the app's server, on the app's CPU.

    PLAIN_UPSTREAM_URL=http://127.0.0.1:9100/v1 uvicorn bench.plain_relay:application
"""

import json
import os
from collections.abc import AsyncIterator

import httpx
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from httpx_sse import aconnect_sse

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="plain-relay",
    INSTALLED_APPS=[],
    DATABASES={},
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)

UPSTREAM = httpx.AsyncClient(
    base_url=os.environ["PLAIN_UPSTREAM_URL"],  # e.g. http://127.0.0.1:9100/v1
    timeout=httpx.Timeout(10.0, read=None),  # an answer may pause for as long as the model thinks
    limits=httpx.Limits(max_connections=None),
)


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def relay_answer(content: str) -> AsyncIterator[str]:
    """The upstream's chunks as `delta` events, then one `done` event."""
    body = {
        "model": "fake",
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens, finish_reason = 0, None
    async with aconnect_sse(UPSTREAM, "POST", "/chat/completions", json=body) as events:
        async for event in events.aiter_sse():
            if event.data == "[DONE]":
                break
            choices = event.json()["choices"]
            if not choices:  # the usage chunk
                continue
            if text := choices[0]["delta"].get("content"):
                tokens += 1
                yield sse("delta", {"text": text})
            finish_reason = choices[0].get("finish_reason") or finish_reason
    yield sse("done", {"finish_reason": finish_reason, "usage": {"tokens_out": tokens}})


@csrf_exempt
@require_POST
async def relay(request: HttpRequest) -> StreamingHttpResponse:
    content = json.loads(request.body)["content"]
    response = StreamingHttpResponse(relay_answer(content), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


urlpatterns = [path("relay", relay)]

application = get_asgi_application()  # calls django.setup()
