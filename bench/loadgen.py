"""The load client: many SSE streams over raw asyncio connections.

It is lean on purpose (no HTTP library, no JSON per event: it only finds event
boundaries and looks for a marker) because on a 2-core machine every cycle it
spends is taken from the server being measured. It runs in its own process:

    python -m bench.loadgen SPEC.json

The spec names the target and a list of workers, each a list of requests.
Each worker is a closed loop, one stream after another, so N workers keep N
streams in flight; their starts are staggered so that arrivals are steady. The
result, written to spec["out"], holds time to first token and the gaps between
token events, plus this process's own CPU time, so the bench can say what the
client cost. Every request says `Connection: close`: one stream, one
connection, and the end of the body is also the end of the socket.
"""

import asyncio
import json
import re
import sys
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

# What marks a token event: the relay's `event: delta` (the plain Django
# relay of bench/plain_relay.py sends the same events), or an OpenAI chunk
# with content (the finish and usage chunks have none). A thinking model's
# `event: reasoning` is output too (bench/reasoning.py).
MARKERS = {
    "relay": b"event: delta",
    "plain": b"event: delta",
    "fastapi": b"event: delta",
    "floor": b"event: delta",
    "direct": b'"content"',
}
RELAYED = ("relay", "plain", "fastapi", "floor")  # the kinds that speak the relay's events
REASONING_MARKER = b"event: reasoning"
# sse-starlette ends its lines with CRLF, as the SSE standard allows.
EVENT_ENDS = {"fastapi": b"\r\n\r\n"}
# The fake upstream's --stamp: each token says when it was sent ("t7@123.456789 ").
STAMP = re.compile(rb"@(\d+\.\d+) ")
READ_SIZE = 65536


class HttpError(Exception):
    pass


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _dechunk(buf: bytes) -> tuple[bytes, bytes, bool]:
    """Decode the whole chunks at the front of a chunked body: (their data,
    the undecoded rest, whether the last chunk was seen)."""
    parts: list[bytes] = []
    pos = 0
    while (eol := buf.find(b"\r\n", pos)) >= 0:
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(parts), b"", True
        end = eol + 2 + size
        if len(buf) < end + 2:
            break
        parts.append(buf[eol + 2 : end])
        pos = end + 2
    return b"".join(parts), buf[pos:], False


async def _read_head(reader: asyncio.StreamReader) -> tuple[bool, bytes, float]:
    """Read the response head; (chunked?, body bytes already read, their time)."""
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        data = await reader.read(READ_SIZE)
        if not data:
            raise HttpError("connection closed before the response head")
        buf += data
        now = time.perf_counter()
    head = buf[:end]
    if head[9:12] != b"200":
        raise HttpError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return b"transfer-encoding: chunked" in head.lower(), buf[end + 4 :], now


async def read_events(reader: asyncio.StreamReader, end: bytes = b"\n\n"):
    """Yield (arrival time, complete events) once per socket read that
    completed any event, and first (head time, []) for the response head.
    Events are raw bytes without the blank line (`end`)."""
    chunked, buf, now = await _read_head(reader)
    yield now, []
    pending = b""
    while True:
        if chunked:
            payload, buf, finished = _dechunk(buf)
        else:
            payload, buf, finished = buf, b"", False
        if payload:
            pending += payload
            *events, pending = pending.split(end)
            if events:
                yield now, events
        if finished:
            return
        data = await reader.read(READ_SIZE)
        if not data:
            return
        now = time.perf_counter()
        buf += data


@dataclass
class Stream:
    started: float = 0.0
    head: float | None = None  # when the response head arrived
    ended: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    tokens: int = 0
    stamped: int = 0  # tokens that said when they were sent
    delays: list[float] = field(default_factory=list)  # their send-to-receipt delays, in ms
    done: bool = False
    error: str | None = None
    follower: bool = False  # following an answer another client started (bench/spread.py)


def _data_json(event: bytes) -> dict:
    return json.loads(event[event.index(b"data: ") + 6 :])


def _note_event(stream: Stream, event: bytes, now: float, marker: bytes, kind: str) -> None:
    relayed = kind in RELAYED
    if marker in event or (relayed and REASONING_MARKER in event):
        stream.arrivals.append(now)
        if stamps := STAMP.findall(event):  # perf_counter is CLOCK_MONOTONIC on Linux, as the stamps are
            stream.stamped += len(stamps)
            stream.delays += [(now - float(stamp)) * 1000 for stamp in stamps]
        if not relayed:
            stream.tokens += 1  # one token per chunk from the fake upstream
    elif relayed and b"event: done" in event:
        stream.tokens, stream.done = _data_json(event)["usage"]["tokens_out"], True
    elif relayed and b"event: error" in event:
        stream.error = "error event: " + _data_json(event).get("message", "?")
    elif not relayed and event.endswith(b"data: [DONE]"):
        stream.done = True


async def one_stream(
    spec: dict, request: bytes, stream: Stream, port: int | None = None, follow: tuple | None = None
) -> None:
    """Send one request and note when each token event arrives. The clock
    starts before connecting: accepting the connection is the server's work too.
    `follow` = (port, streams): once the answer's `start` event names its
    turn, another client follows it from that port (GET .../events), a
    Stream of its own appended to `streams` (bench/spread.py)."""
    marker, kind = MARKERS[spec["kind"]], spec["kind"]
    end = EVENT_ENDS.get(kind, b"\n\n")
    stream.started = time.perf_counter()
    followers: list[asyncio.Task] = []
    try:
        reader, writer = await asyncio.open_connection(spec["host"], port or spec["port"])
        try:
            writer.write(request)
            async with aclosing(read_events(reader, end)) as batches:
                async for now, events in batches:
                    if stream.head is None:
                        stream.head = now
                    for event in events:
                        if follow and not followers and event.startswith(b"event: start"):
                            followers.append(asyncio.create_task(_follow(spec, event, *follow)))
                        _note_event(stream, event, now, marker, kind)
            await asyncio.gather(*followers)
            if not stream.done and stream.error is None:
                stream.error = "stream ended without its final event"
        finally:
            writer.close()
    except (OSError, HttpError, ValueError, KeyError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    stream.ended = time.perf_counter()


async def _follow(spec: dict, start: bytes, port: int, streams: list[Stream]) -> None:
    """Read the answer `start` names from another app process, from its beginning."""
    turn_id = _data_json(start)["turn_id"]
    lines = [
        f"GET /api/turns/{turn_id}/events HTTP/1.1",
        f"Host: {spec['host']}:{port}",
        "Accept: text/event-stream",
        "Connection: close",
        *(f"{name}: {value}" for name, value in spec.get("headers", {}).items()),
    ]
    follower = Stream(follower=True)
    streams.append(follower)
    await one_stream(spec, ("\r\n".join(lines) + "\r\n\r\n").encode(), follower, port=port)


async def worker(
    spec: dict, requests: list[bytes], start: float, stop_at: float, streams: list[Stream], index: int = 0
) -> None:
    """A closed loop: one stream at a time, back to back, cycling through this
    worker's requests, until `streams_per_worker` or no new start after `stop_at`.
    spec["ports"] and spec["follow_ports"], if given, say per worker which
    port it sends to and from which another client follows each answer."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    limit = spec.get("streams_per_worker")
    port = spec["ports"][index] if "ports" in spec else None
    follow_port = spec["follow_ports"][index] if "follow_ports" in spec else None
    for count in range(limit or 1 << 30):
        if time.perf_counter() >= stop_at:
            return
        stream = Stream()
        streams.append(stream)
        follow = (follow_port, streams) if follow_port else None
        await one_stream(spec, requests[count % len(requests)], stream, port=port, follow=follow)
        await asyncio.sleep(spec.get("pause", 0.0))


async def run(spec: dict) -> tuple[list[Stream], float]:
    """Start the workers spread evenly over spec["stagger"] seconds, so that
    arrivals are steady from the start; return the streams and the start time."""
    host, port, headers = spec["host"], spec["port"], spec.get("headers", {})
    ports = spec.get("ports") or [port] * len(spec["workers"])
    workers = [
        [build_request(host, ports[i], path, body.encode(), headers) for path, body in w]
        for i, w in enumerate(spec["workers"])
    ]
    step = spec.get("stagger", 0.0) / len(workers)
    t0 = time.perf_counter() + 0.05
    stop_at = t0 + spec["run_for"] if spec.get("run_for") else float("inf")
    streams: list[Stream] = []
    try:
        async with asyncio.timeout(spec["timeout"]):
            await asyncio.gather(
                *(worker(spec, reqs, t0 + i * step, stop_at, streams, i) for i, reqs in enumerate(workers))
            )
    except TimeoutError:
        for stream in streams:
            if not stream.done and stream.error is None:
                stream.error, stream.ended = f"timed out after {spec['timeout']:g} s", time.perf_counter()
    return streams, t0


def mean_open(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Mean number of the (from, to) spans open during [start, end]."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans) / (end - start)


def result(streams: list[Stream], t0: float, window: list[float] | None, cpu_s: float, wall_s: float) -> dict:
    """Totals over every stream; latency figures only from the steady-state
    window (seconds after t0): streams started in it, gaps ending in it."""
    start, end = (t0 + window[0], t0 + window[1]) if window else (float("-inf"), float("inf"))
    ok = [s for s in streams if s.error is None]
    return {
        "streams": len(streams),
        "ok": len(ok),
        "errors": sorted({s.error for s in streams if s.error})[:5],
        "ttft_ms": [
            (s.arrivals[0] - s.started) * 1000
            for s in ok
            if s.arrivals and start <= s.started <= end and not s.follower
        ],
        "gaps_ms": [(b - a) * 1000 for s in ok for a, b in pairwise(s.arrivals) if start <= b <= end],
        # Streams in flight (request sent, not ended) and streaming (between
        # their first and last token): a server that queues requests keeps
        # the first high and the second low.
        "in_flight": mean_open([(s.started, s.ended) for s in streams], start, end) if window else None,
        "streaming": mean_open([(s.arrivals[0], s.arrivals[-1]) for s in ok if s.arrivals], start, end)
        if window
        else None,
        "head_ms": [(s.head - s.started) * 1000 for s in ok if s.head and start <= s.started <= end],
        "tokens": sum(s.tokens for s in ok),
        "stamped": sum(s.stamped for s in ok),
        # A follower replays the answer from its start: its first tokens were
        # sent before it came, so their delays say nothing of the relay's.
        "delays_ms": [d for s in ok if start <= s.started <= end and not s.follower for d in s.delays],
        # Events a second per stream, over each stream's first to last token.
        "event_rates": [
            (len(s.arrivals) - 1) / (s.arrivals[-1] - s.arrivals[0])
            for s in ok
            if len(s.arrivals) > 1 and s.arrivals[-1] > s.arrivals[0] and start <= s.started <= end
        ],
        "events": sum(len(s.arrivals) for s in ok),
        "followers": sum(s.follower for s in streams),
        "followers_ok": sum(s.follower for s in ok),
        "follower_tokens": sum(s.tokens for s in ok if s.follower),
        "cpu_s": cpu_s,
        "wall_s": wall_s,
    }


def _event_loop_runner():
    """uvloop when it is there, as under uvicorn: it is also the cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    cpu, wall = time.process_time(), time.perf_counter()
    streams, t0 = _event_loop_runner()(run(spec))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    Path(spec["out"]).write_text(json.dumps(result(streams, t0, spec.get("window"), cpu, wall)))


if __name__ == "__main__":
    main()
