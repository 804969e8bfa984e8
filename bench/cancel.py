"""Cancel propagation: a client drops its connection mid-answer; how long
until the model server sees its own request closed.

Relay: the client aborts its stream from the app; the app must notice and
close its upstream request. Baseline: the same client aborting a stream it
reads from the upstream directly, which the upstream notices itself. Both
times come from time.monotonic(), one clock for the whole machine on Linux:
the client notes when it closed, the fake upstream when its client left
(GET /calls).
"""

import socket
import time

import httpx

from . import procs
from .stats import summary

MARKERS = {"relay": b"event: delta", "direct": b'"content"'}


def _abort_after_first_token(kind: str, port: int, request: bytes) -> float:
    """Stream until the first token, then close; the monotonic time of the close."""
    with socket.create_connection((procs.HOST, port), timeout=10) as sock:
        sock.sendall(request)
        seen = b""
        while MARKERS[kind] not in seen:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the stream ended before its first token")
            seen = seen[-64:] + data
        closed_at = time.monotonic()
    return closed_at


def _upstream_saw_close(upstream_port: int, after: float, timeout: float = 5.0) -> float:
    """When the newest call that started after `after` lost its client."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"http://{procs.HOST}:{upstream_port}") as http:
        while time.monotonic() < deadline:
            calls = [call for call in http.get("/calls").json() if call["started_at"] > after]
            if calls and calls[-1]["disconnected_at"] is not None:
                return calls[-1]["disconnected_at"]
            time.sleep(0.002)
    raise TimeoutError("the upstream never saw its client leave")


def measure(kind: str, target_port: int, request: bytes, upstream_port: int, samples: int) -> dict:
    """p50/p99 ms from the client's close to the upstream seeing its request closed."""
    latencies = []
    for _ in range(samples):
        sent_at = time.monotonic()
        closed_at = _abort_after_first_token(kind, target_port, request)
        latencies.append((_upstream_saw_close(upstream_port, sent_at) - closed_at) * 1000)
        time.sleep(0.05)  # let the relay save the turn before the next
    return summary(latencies)
