"""Stalled readers: what each ASGI server does with memory when clients stop
reading while the model keeps writing.

The fake upstream sends 10,000 tokens as fast as it can; N clients post a
message, read the response head, then read nothing more. uvicorn applies
backpressure (its `send` waits while the socket's buffer is full), so the
relay's backlog cap stops reading the upstream; daphne buffers whatever it is
sent. Baseline: the same server's memory with the clients reading normally.
With --redis URL, uvicorn is measured once more with REDIS_URL set (the
journal's publisher follows every answer: it must not pace the model for a
stalled client).

    python -m bench.stalled [--streams N] [--no-pin] [--redis redis://127.0.0.1:6379/13]
"""

import argparse
import socket
import tempfile
import time
from pathlib import Path

from harness import fake_upstream

from . import procs, report
from .rig import app_env, prepare_database

TOKENS = 10_000
TOKEN_CHARS = 100  # 1 MB of text per answer: past the relay's 256 KiB backlog cap
SETTLE_S = 1.0  # RSS unchanged this long: the servers have done what they will


APP = "chatstream.asgi:application"
SERVERS = {
    "uvicorn": [procs.PYTHON, "-m", "uvicorn", APP, "--log-level", "warning"],
    "daphne": [procs.PYTHON, "-m", "daphne", "-v", "0", APP],
}
WARM_UP_STREAMS = 5


def _listen(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return ["--host", procs.HOST, "--port", str(port)]
    return ["-b", procs.HOST, "-p", str(port)]


def _request(port: int, key: str, conversation_id: str) -> bytes:
    body = b'{"content": "Please ramble."}'
    return (
        f"POST /api/conversations/{conversation_id}/messages HTTP/1.1\r\nHost: {procs.HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _open_streams(port: int, key: str, count: int) -> list[socket.socket]:
    import httpx

    with httpx.Client(base_url=f"http://{procs.HOST}:{port}", headers={"Authorization": f"Bearer {key}"}) as client:
        ids = [client.post("/api/conversations", json={}).json()["id"] for _ in range(count)]
    sockets = []
    for conversation_id in ids:
        sock = socket.create_connection((procs.HOST, port))
        # A small receive buffer, as a slow phone's would fill: the server sees the stall early.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(_request(port, key, conversation_id))
        sockets.append(sock)
    return sockets


def _drained(sockets: list[socket.socket], seconds: float) -> list[socket.socket]:
    """Read everything for `seconds`: the baseline's readers keep up."""
    for sock in sockets:
        sock.setblocking(False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in sockets:
            try:
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                pass
        time.sleep(0.005)
    return sockets


def _rss_when_settled(pid: int, timeout: float) -> int:
    """Peak RSS once it has stopped growing (or at the timeout)."""
    peak, changed_at = procs.rss_bytes(pid), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and time.monotonic() - changed_at < SETTLE_S:
        time.sleep(0.05)
        rss = procs.rss_bytes(pid)
        if rss > peak:
            peak, changed_at = rss, time.monotonic()
    return peak


def measure(name: str, argv: list[str], env: dict, key: str, streams: int, *, tmp: Path, cpus, label: str = "") -> dict:
    """A fresh server per mode (RSS never shrinks, so one mode's peak would
    hide the next one's), warmed up before its idle RSS is read."""
    figures = {}
    for mode in ("reading", "stalled"):
        port = procs.free_port()
        with procs.Service(
            f"{name} {mode} {port}", [*argv, *_listen(name, port)], port, log_dir=tmp, env=env, cpus=cpus
        ) as server:
            _warm_up(port, key)
            time.sleep(SETTLE_S)
            idle = procs.rss_bytes(server.pid)
            sockets = _open_streams(port, key, streams)
            if mode == "reading":
                _drained(sockets, 3.0)
            peak = _rss_when_settled(server.pid, timeout=30.0)
            _close(sockets)
        figures[mode] = (peak - idle) / streams / 1024
    return {"server": label or name, "kib_per_stream": figures}


def _warm_up(port: int, key: str) -> None:
    """Pay for imports, pools and caches, then leave at the first token: a
    warm-up that read whole 10 MB answers would leave that much freed heap,
    which the streams measured next would reuse without RSS growing."""
    sockets = _open_streams(port, key, WARM_UP_STREAMS)
    for sock in sockets:
        received = b""
        while b"event: delta" not in received:
            received += sock.recv(65536) or b"event: delta"  # or the server closed it
    _close(sockets)


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def run(*, pin: bool = True, streams: int = 50, token_chars: int = TOKEN_CHARS, redis_url: str = "") -> dict:
    layout = procs.cpu_layout(pin)
    with tempfile.TemporaryDirectory(prefix="bench-stalled-") as tmp_name:
        tmp = Path(tmp_name)
        upstream_port = procs.free_port()
        upstream = fake_upstream.service(
            upstream_port,
            log_dir=tmp,
            cpus=layout["harness"],
            first_token_delay=0,
            pace=0,
            tokens=TOKENS,
            token_chars=token_chars,
        )
        with upstream:
            env = app_env(tmp, upstream_port)
            key = prepare_database(env)
            results = [
                measure(name, argv, env, key, streams, tmp=tmp, cpus=layout["measured"])
                for name, argv in SERVERS.items()
            ]
            if redis_url:
                on_redis = {**env, "REDIS_URL": redis_url}
                uvicorn = SERVERS["uvicorn"]
                label = "uvicorn, REDIS_URL set"
                results.append(
                    measure("uvicorn", uvicorn, on_redis, key, streams, tmp=tmp, cpus=layout["measured"], label=label)
                )
    return {
        "streams": streams,
        "tokens": TOKENS,
        "token_chars": token_chars,
        "layout": procs.describe_layout(layout),
        "results": results,
    }


def print_results(results: dict) -> None:
    print(
        f"\n== Stalled readers: {results['streams']} clients read the response head, then nothing, while the "
        f"upstream sends {results['tokens']:,} tokens of {results['token_chars']} characters as fast as it can "
        f"({results['layout']})"
    )
    headers = ["server", "RSS growth KiB / stream, clients reading (baseline)", "same, clients stalled", "ratio"]
    rows = []
    for result in results["results"]:
        reading, stalled = result["kib_per_stream"]["reading"], result["kib_per_stream"]["stalled"]
        rows.append(
            [
                result["server"],
                report.fmt(reading, 1),
                report.fmt(stalled, 1),
                report.fmt(stalled / max(reading, 1.0), 1, "x"),
            ]
        )
    print(report.table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--token-chars", type=int, default=TOKEN_CHARS, help="characters per token")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--redis", default="", help="also measure uvicorn with this REDIS_URL")
    args = parser.parse_args()
    results = run(pin=args.pin, streams=args.streams, token_chars=args.token_chars, redis_url=args.redis)
    print_results(results)
    print(f"results: {report.save({'stalled': results}, 'stalled')}")


if __name__ == "__main__":
    main()
