"""Which upstream HTTP/SSE client should the provider use? CPU per token.

The fake upstream runs as its own process; each candidate client runs in a
fresh worker process (so imports, heaps and pools do not leak between them),
reads K concurrent streams of N tokens, and reports its process CPU time for
the timed part. Every candidate parses each chunk's JSON and takes the text,
as the provider must.

    python -m bench.clients [--quick] [--no-pin]

Worker mode (used by the above): python -m bench.clients SPEC.json
"""

import argparse
import asyncio
import gc
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from harness import fake_upstream

from . import procs, report
from .loadgen import _event_loop_runner, build_request, read_events
from .stats import per_thousand

MODEL = "fake"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something long."}]
BODY = orjson.dumps({"model": MODEL, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}})
HEADERS = {"Accept": "text/event-stream", "Content-Type": "application/json", "Authorization": "Bearer x"}

SIZES = {
    "full": {"streams": 100, "tokens": 200, "repeats": 2},
    "quick": {"streams": 50, "tokens": 100, "repeats": 1},
}
WARM_STREAMS, WARM_TOKENS = 10, 20

# A reader takes a token limit (None: the whole stream) and returns how many
# tokens it read; a candidate is a context manager that yields one.
Reader = Callable[[int | None], Awaitable[int]]


def _text(chunk: dict) -> str | None:
    choices = chunk.get("choices")
    return (choices[0].get("delta") or {}).get("content") if choices else None


async def _count_tokens(payloads: AsyncIterator[str | bytes], limit: int | None) -> int:
    """Parse each event's data and count the chunks with text, up to `limit`."""
    tokens = 0
    async for data in payloads:
        if data in ("[DONE]", b"[DONE]"):
            break
        if _text(orjson.loads(data)):
            tokens += 1
            if tokens == limit:
                break
    return tokens


@asynccontextmanager
async def _httpx_reader(base_url: str, payloads) -> AsyncIterator[Reader]:
    """A candidate over httpx; `payloads(response)` yields each event's data."""
    import httpx

    timeout = httpx.Timeout(connect=10.0, read=None, write=10.0, pool=10.0)
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None)) as client:

        async def read(limit: int | None) -> int:
            async with client.stream("POST", f"{base_url}/chat/completions", content=BODY, headers=HEADERS) as response:
                return await _count_tokens(payloads(response), limit)

        yield read


def httpx_sse(base_url: str):
    """(a) httpx with httpx-sse, the provider's client before aiohttp was measured."""
    from httpx_sse import EventSource

    def payloads(response):
        return (event.data async for event in EventSource(response).aiter_sse())

    return _httpx_reader(base_url, payloads)


@asynccontextmanager
async def app_provider(base_url: str) -> AsyncIterator[Reader]:
    """(a') The app's own OpenAIProvider.stream(), whatever it is today."""
    from conversations.providers.base import Completion
    from conversations.providers.openai import OpenAIProvider, close_shared_session

    provider = OpenAIProvider(model=MODEL, base_url=base_url, api_key="x")

    async def read(limit: int | None) -> int:
        # The provider hands on each network read's text in one piece, so
        # tokens are counted from the completion, not from the pieces.
        completion = Completion(model=MODEL)
        async with aclosing(provider.stream(MESSAGES, completion)) as texts:
            async for _ in texts:
                if limit is not None and completion.deltas >= limit:
                    break
        return completion.deltas

    try:
        yield read
    finally:
        await close_shared_session()


@asynccontextmanager
async def openai_sdk(base_url: str) -> AsyncIterator[Reader]:
    """(b) The official SDK: typed chunks (pydantic) over httpx2."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)

    async def read(limit: int | None) -> int:
        tokens = 0
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    tokens += 1
                    if tokens == limit:
                        break
        return tokens

    try:
        yield read
    finally:
        await client.close()


def httpx_lines(base_url: str):
    """(c) httpx without an SSE library: aiter_lines and `data: ` lines."""

    def payloads(response):
        return (line[6:] async for line in response.aiter_lines() if line.startswith("data: "))

    return _httpx_reader(base_url, payloads)


@asynccontextmanager
async def aiohttp_lines(base_url: str) -> AsyncIterator[Reader]:
    """(d) aiohttp's line iterator; only run when aiohttp is installed."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def read(limit: int | None) -> int:
            async with session.post(f"{base_url}/chat/completions", data=BODY, headers=HEADERS) as response:
                lines = (raw[6:].strip() async for raw in response.content if raw.startswith(b"data: "))
                return await _count_tokens(lines, limit)

        yield read


@asynccontextmanager
async def raw_asyncio(base_url: str) -> AsyncIterator[Reader]:
    """(floor) The bench's own load client plus orjson: no HTTP library at
    all, one connection per stream. A lower bound, not a candidate."""
    host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
    request = build_request(host, int(port), "/v1/chat/completions", BODY, {"Authorization": "Bearer x"})

    async def read(limit: int | None) -> int:
        tokens = 0
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            async with aclosing(read_events(reader)) as batches:
                async for _, events in batches:
                    for event in events:
                        if event == b"data: [DONE]":
                            return tokens
                        if event.startswith(b"data: ") and _text(orjson.loads(event[6:])):
                            tokens += 1
                            if tokens == limit:
                                return tokens
        finally:
            writer.close()
        return tokens

    yield read


# name: (label, factory, Python module it needs, is it a candidate?)
CLIENTS = {
    "httpx-sse": ("(a) httpx + httpx-sse", httpx_sse, "httpx_sse", True),
    "app-provider": ("(a') the app's OpenAIProvider.stream() (aiohttp)", app_provider, "aiohttp", True),
    "openai-sdk": ("(b) openai SDK, AsyncOpenAI stream=True", openai_sdk, "openai", True),
    "httpx-lines": ("(c) httpx aiter_lines + orjson", httpx_lines, "httpx", True),
    "aiohttp": ("(d) aiohttp line iterator + orjson", aiohttp_lines, "aiohttp", True),
    "raw-asyncio": ("(floor) raw asyncio streams + orjson", raw_asyncio, "asyncio", False),
}


# --- worker ------------------------------------------------------------------


async def _measure(spec: dict) -> dict:
    _, factory, _, _ = CLIENTS[spec["client"]]
    async with factory(spec["base_url"]) as read:
        # Warm up imports, code paths and the pool, then time a clean round.
        await asyncio.gather(*(read(WARM_TOKENS) for _ in range(WARM_STREAMS)))
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        counts = await asyncio.gather(*(read(None) for _ in range(spec["streams"])), return_exceptions=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    errors = sorted({f"{type(c).__name__}: {c}" for c in counts if isinstance(c, BaseException)})
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "tokens": sum(c for c in counts if isinstance(c, int)),
        "errors": errors[:5],
    }


def worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    outcome = _event_loop_runner()(_measure(spec))
    Path(spec["out"]).write_text(json.dumps(outcome))


# --- orchestration -----------------------------------------------------------


def _available() -> list[str]:
    return [name for name, (_, _, module, _) in CLIENTS.items() if importlib.util.find_spec(module) is not None]


def _measure_all(names: list[str], size: dict, base_url: str, work_dir: Path, cpus) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in names}
    expected = size["streams"] * size["tokens"]
    for _ in range(size["repeats"]):  # interleaved, so a slow moment hits every client alike
        for name in names:
            spec = {"client": name, "base_url": base_url, "streams": size["streams"]}
            timeout = 30 + 3 * size["tokens"] * 0.02
            try:
                outcome, _ = procs.run_worker("bench.clients", spec, work_dir=work_dir, cpus=cpus, timeout=timeout)
            except (RuntimeError, TimeoutError) as exc:  # one broken client must not sink the others
                outcome = {"cpu_s": 0.0, "wall_s": 0.0, "tokens": 0, "errors": [str(exc)]}
            if outcome["tokens"] != expected and not outcome["errors"]:
                outcome["errors"] = [f"read {outcome['tokens']} tokens, expected {expected}"]
            runs[name].append(outcome)
    return runs


def _rows(runs: dict[str, list[dict]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, outcomes in runs.items():
        label, _, _, candidate = CLIENTS[name]
        good = [o for o in outcomes if not o["errors"]]
        best = min(good, key=lambda o: o["cpu_s"] / o["tokens"]) if good else None
        rows.append(
            {
                "client": name,
                "label": label,
                "candidate": candidate,
                "cpu_s_per_1k_tokens": per_thousand(best["cpu_s"], best["tokens"]) if best else None,
                "all_cpu_s_per_1k_tokens": [per_thousand(o["cpu_s"], o["tokens"]) for o in good],
                "tokens": best["tokens"] if best else 0,
                "wall_s": best["wall_s"] if best else None,
                "errors": sorted({e for o in outcomes for e in o["errors"]})[:3],
            }
        )
    cheapest = min(
        (r["cpu_s_per_1k_tokens"] for r in rows if r["candidate"] and r["cpu_s_per_1k_tokens"]), default=None
    )
    for row in rows:
        row["ratio_to_cheapest"] = (
            row["cpu_s_per_1k_tokens"] / cheapest if cheapest and row["cpu_s_per_1k_tokens"] else None
        )
    return rows


def run(*, quick: bool = False, pin: bool = True) -> dict:
    size = SIZES["quick" if quick else "full"]
    layout = procs.cpu_layout(pin)
    names = _available()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp:
        port = procs.free_port()
        upstream = fake_upstream.service(
            port, log_dir=Path(tmp), cpus=layout["harness"], first_token_delay=0, pace=0.02, tokens=size["tokens"]
        )
        with upstream:
            runs = _measure_all(names, size, f"http://{procs.HOST}:{port}/v1", Path(tmp), layout["measured"])
    return {
        "size": size,
        "layout": procs.describe_layout(layout),
        "skipped": {name: f"{CLIENTS[name][2]} not installed" for name in CLIENTS if name not in names},
        "rows": _rows(runs),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        worker(sys.argv[1])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about 15 s")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    args = parser.parse_args()
    results = run(quick=args.quick, pin=args.pin)
    report.print_clients(results)
    print(f"results: {report.save({'clients': results}, 'clients')}")


if __name__ == "__main__":
    main()
