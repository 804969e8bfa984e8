"""The load client: many SSE streams over raw asyncio connections.

It is lean on purpose (no HTTP library, no JSON per event: it only finds event
boundaries and looks for a marker) because on a 2-core machine every cycle it
spends is taken from the server being measured. It runs in its own process:

    python -m bench.loadgen SPEC.json

The spec names the target, the requests and how to send them; the result,
written to spec["out"], holds time to first token and the gaps between token
events per stream, plus this process's own CPU time, so the bench can say what
the client cost. Every request says `Connection: close`: one stream, one
connection, and the end of the body is also the end of the socket.
"""

import asyncio
import json
import sys
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

# What marks a token event: the relay's `event: delta`, or an OpenAI chunk
# with content (the finish and usage chunks have none).
MARKERS = {"relay": b"event: delta", "direct": b'"content"'}
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
    parts, pos = [], 0
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


async def read_events(reader: asyncio.StreamReader):
    """Yield (arrival time, complete events) once per socket read that
    completed any event. Events are raw bytes without the blank line."""
    chunked, buf, now = await _read_head(reader)
    pending = b""
    while True:
        if chunked:
            payload, buf, finished = _dechunk(buf)
        else:
            payload, buf, finished = buf, b"", False
        if payload:
            pending += payload
            *events, pending = pending.split(b"\n\n")
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
    arrivals: list[float] = field(default_factory=list)
    tokens: int = 0
    done: bool = False
    error: str | None = None


def _data_json(event: bytes) -> dict:
    return json.loads(event[event.index(b"data: ") + 6 :])


def _note_event(stream: Stream, event: bytes, now: float, marker: bytes, kind: str) -> None:
    if marker in event:
        stream.arrivals.append(now)
        if kind == "direct":
            stream.tokens += 1  # one token per chunk from the fake upstream
    elif kind == "relay" and b"event: done" in event:
        stream.tokens, stream.done = _data_json(event)["usage"]["tokens_out"], True
    elif kind == "relay" and b"event: error" in event:
        stream.error = "error event: " + _data_json(event).get("message", "?")
    elif kind == "direct" and event.endswith(b"data: [DONE]"):
        stream.done = True


async def one_stream(spec: dict, request: bytes, stream: Stream) -> None:
    """Send one request and note when each token event arrives. The clock
    starts before connecting: accepting the connection is the server's work too."""
    marker, kind, first_only = MARKERS[spec["kind"]], spec["kind"], spec.get("first_only", False)
    stream.started = time.perf_counter()
    reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
    try:
        writer.write(request)
        async with aclosing(read_events(reader)) as batches:
            async for now, events in batches:
                for event in events:
                    _note_event(stream, event, now, marker, kind)
                if first_only and stream.arrivals:
                    return
        if not stream.done and stream.error is None:
            stream.error = "stream ended without its final event"
    finally:
        writer.close()


async def _guarded(spec: dict, request: bytes, stream: Stream, delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        await one_stream(spec, request, stream)
    except (OSError, HttpError, ValueError, KeyError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"


async def run(spec: dict) -> list[Stream]:
    """All requests at once, their starts spread evenly over spec["spread"]
    seconds; or one after another with a pause when spec["sequential"]."""
    requests = [
        build_request(spec["host"], spec["port"], path, body.encode(), spec.get("headers", {}))
        for path, body in spec["requests"]
    ]
    streams = [Stream() for _ in requests]
    try:
        async with asyncio.timeout(spec["timeout"]):
            if spec.get("sequential"):
                for request, stream in zip(requests, streams, strict=True):
                    await _guarded(spec, request, stream, 0)
                    await asyncio.sleep(spec.get("pause", 0.05))
            else:
                step = spec.get("spread", 0.0) / len(requests)
                await asyncio.gather(
                    *(_guarded(spec, r, s, i * step) for i, (r, s) in enumerate(zip(requests, streams, strict=True)))
                )
    except TimeoutError:
        for stream in streams:
            if not stream.done and stream.error is None:
                stream.error = f"timed out after {spec['timeout']:g} s"
    return streams


def result(streams: list[Stream], cpu_s: float, wall_s: float) -> dict:
    ok = [s for s in streams if s.error is None]
    return {
        "streams": len(streams),
        "ok": len(ok),
        "errors": sorted({s.error for s in streams if s.error})[:5],
        "ttft_ms": [(s.arrivals[0] - s.started) * 1000 for s in ok if s.arrivals],
        "gaps_ms": [(b - a) * 1000 for s in ok for a, b in pairwise(s.arrivals)],
        "tokens": sum(s.tokens for s in ok),
        "events": sum(len(s.arrivals) for s in ok),
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
    streams = _event_loop_runner()(run(spec))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    Path(spec["out"]).write_text(json.dumps(result(streams, cpu, wall)))


if __name__ == "__main__":
    main()
