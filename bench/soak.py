"""The bounded load test: many concurrent streams through a real server for a
while, with a share of the clients leaving at random moments, then a count of
what the database holds.

    python -m bench.soak [--streams 500] [--seconds 60] [--leave 0.2] [--tokens 300]

The fake upstream answers at a realistic pace (first token after 300 ms, then
one every 20 ms); the app runs under uvicorn, pinned to one core, on SQLite
in a temporary directory (or DATABASE_URL if set). The load client (this
module again, in its own process) keeps `--streams` streams open in closed
loops; each stream leaves after a random part of its answer with probability
`--leave`. Checked at the end:

- every message the server accepted (a 200) has its answer saved exactly
  once, and no other answer is saved (database count = accepted count); every
  turn id a `start` event named is among them;
- no 5xx, no stream that ended without its final event unless its client left;
- the server's resident memory, sampled every second, is flat after warm-up
  (the second half's mean against the first half's, after the first 20 %).
"""

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, aclosing
from pathlib import Path

from harness import fake_upstream

from . import procs, report
from .loadgen import HttpError, _event_loop_runner, build_request, read_events
from .rig import app_env, app_server, prepare_database

FIRST_TOKEN_DELAY, PACE = 0.3, 0.02


# --- the load client (its own process) -------------------------------------------


async def one_stream(spec: dict, request: bytes, leave: bool, outcome: dict) -> None:
    """One message's stream, read to its end or left at a random moment."""
    answer_seconds = FIRST_TOKEN_DELAY + spec["tokens"] * PACE
    leave_at = time.monotonic() + random.uniform(0.05, answer_seconds) if leave else float("inf")
    try:
        reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
    except OSError as exc:
        outcome["errors"].append(f"connect: {exc}")
        return
    outcome_noted = False
    try:
        writer.write(request)
        async with aclosing(read_events(reader)) as batches:
            async for _, events in batches:
                if not events and not outcome_noted:
                    outcome["accepted"] += 1  # a 200 head: the message is saved and its answer started
                    outcome_noted = True
                for event in events:
                    if event.startswith(b"event: start"):
                        data = json.loads(event[event.index(b"data: ") + 6 :])
                        outcome["started"].append(data["turn_id"])
                    elif event.startswith((b"event: done", b"event: error")):
                        outcome["finished"] += 1
                        return
                if time.monotonic() >= leave_at:
                    outcome["left"] += 1
                    return
        outcome["errors"].append("stream ended without its final event")
    except HttpError as exc:
        outcome["statuses"].append(str(exc))
    except (OSError, ValueError) as exc:
        outcome["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.transport.abort()  # leaving: no goodbye, as a dropped client


async def client_worker(spec: dict, requests: list[bytes], stop_at: float, outcome: dict) -> None:
    await asyncio.sleep(random.uniform(0, FIRST_TOKEN_DELAY + spec["tokens"] * PACE))  # steady arrivals
    for count in range(1 << 30):
        if time.monotonic() >= stop_at:
            return
        await one_stream(spec, requests[count % len(requests)], random.random() < spec["leave"], outcome)


async def run_clients(spec: dict) -> dict:
    host, port, headers = spec["host"], spec["port"], spec["headers"]
    body = json.dumps({"content": "Tell me about load tests."}).encode()
    outcome: dict = {"accepted": 0, "started": [], "finished": 0, "left": 0, "statuses": [], "errors": []}
    stop_at = time.monotonic() + spec["seconds"]
    workers = [
        client_worker(
            spec, [build_request(host, port, f"/api/conversations/{cid}/messages", body, headers)], stop_at, outcome
        )
        for cid in spec["conversations"]
    ]
    await asyncio.gather(*workers)
    return outcome


# --- the orchestration -----------------------------------------------------------


def sample_rss(pid: int, seconds: float, stop: list[bool]) -> list[tuple[float, int]]:
    samples, start = [], time.monotonic()
    while not stop:
        samples.append((time.monotonic() - start, procs.rss_bytes(pid)))
        time.sleep(seconds)
    return samples


def saved_answers(env: dict, tmp: Path) -> list[str]:
    """The ids of the assistant turns the database holds."""
    url = env["DATABASE_URL"]
    query = "SELECT id FROM conversations_turn WHERE role = 'assistant'"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return [str(row[0]).replace("-", "") for row in db.execute(query)]
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as db:
        return [row[0].hex for row in db.execute(query)]


def new_conversations(port: int, key: str, count: int) -> list[str]:
    import httpx

    with httpx.Client(base_url=f"http://{procs.HOST}:{port}", headers={"Authorization": f"Bearer {key}"}) as http:
        return [http.post("/api/conversations", json={}).json()["id"] for _ in range(count)]


def run(args: argparse.Namespace) -> dict:
    layout = procs.cpu_layout(pin=True)
    with tempfile.TemporaryDirectory(prefix="chatstream-soak-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        upstream = stack.enter_context(
            fake_upstream.service(
                procs.free_port(),
                log_dir=tmp,
                cpus=layout["harness"],
                first_token_delay=FIRST_TOKEN_DELAY,
                pace=PACE,
                tokens=args.tokens,
            )
        )
        env = app_env(tmp, upstream.port)
        if os.environ.get("DATABASE_URL", "").startswith("postgres"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        env |= {
            "CHATSTREAM_MAX_CONCURRENT_STREAMS": "0",
            "CHATSTREAM_MESSAGES_PER_MINUTE": "0",
        }  # one user, many streams
        key = prepare_database(env)
        app = stack.enter_context(app_server("uvicorn", procs.free_port(), env, log_dir=tmp, cpus=layout["measured"]))
        before = set(saved_answers(env, tmp))
        spec = {
            "host": procs.HOST,
            "port": app.port,
            "headers": {"Authorization": f"Bearer {key}"},
            "conversations": new_conversations(app.port, key, args.streams),
            "seconds": args.seconds,
            "leave": args.leave,
            "tokens": args.tokens,
        }
        stop: list[bool] = []
        rss: list[tuple[float, int]] = []
        sampler = threading.Thread(target=lambda: rss.extend(sample_rss(app.pid, 1.0, stop)), daemon=True)
        sampler.start()
        cpu_before = procs.cpu_seconds(app.pid)
        outcome, peaks = procs.run_worker(
            "bench.soak",
            spec,
            work_dir=tmp,
            cpus=layout["harness"],
            timeout=args.seconds + 120,
            watch=(app.pid,),
        )
        cpu = procs.cpu_seconds(app.pid) - cpu_before
        stop.append(True)
        sampler.join()
        time.sleep(2.0)  # the last saves after the clients are gone
        saved = set(saved_answers(env, tmp)) - before
        return {
            "layout": procs.describe_layout(layout),
            "args": vars(args),
            "outcome": outcome,
            "saved": saved,
            "rss": rss,
            "peak_rss": peaks[app.pid]["rss"],
            "app_cpu_s": cpu,
        }


def rss_trend(samples: list[tuple[float, int]]) -> tuple[float, float]:
    """Mean RSS (MiB) of the first and second half of the run after warm-up (the first 20 %)."""
    steady = [rss for _, rss in samples[len(samples) // 5 :]]
    half = len(steady) // 2
    mib = 1024 * 1024
    return sum(steady[:half]) / half / mib, sum(steady[half:]) / (len(steady) - half) / mib


def print_results(results: dict) -> int:
    outcome, saved = results["outcome"], results["saved"]
    started = {turn_id.replace("-", "") for turn_id in outcome["started"]}
    server_errors = [status for status in outcome["statuses"] if " 5" in status[:13]]
    first, second = rss_trend(results["rss"])
    rows = [
        ["messages accepted (200, answer started)", str(outcome["accepted"])],
        ["  read to their final event", str(outcome["finished"])],
        ["  left by their client mid-answer", str(outcome["left"])],
        ["  turn ids seen in `start` events", str(len(outcome["started"]))],
        ["answers saved", str(len(saved))],
        ["  seen but not saved", str(len(started - saved))],
        ["  one turn id in two streams", str(len(outcome["started"]) - len(started))],
        ["responses 5xx", str(len(server_errors))],
        ["other refusals (status lines)", str(len(outcome["statuses"]) - len(server_errors))],
        ["client errors (no final event, not left)", str(len(outcome["errors"]))],
        ["server RSS, mean of 1st / 2nd half after warm-up", f"{first:.1f} / {second:.1f} MiB"],
        ["server RSS peak", f"{results['peak_rss'] / 1024 / 1024:.1f} MiB"],
        ["server CPU", f"{results['app_cpu_s']:.1f} s"],
    ]
    args = results["args"]
    print(f"Soak: {args['streams']} concurrent streams for {args['seconds']} s, {args['leave']:.0%} of clients leaving")
    print(f"({results['layout']}; {os.cpu_count()} CPUs)\n")
    print(report.table(["", "figure"], rows))
    for error in outcome["errors"][:5]:
        print("  e.g.", error)
    ok = len(saved) == outcome["accepted"] and started <= saved and len(started) == len(outcome["started"])
    ok = ok and not server_errors and not outcome["errors"]
    ok = ok and second <= first * 1.10  # flat: within 10 %
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):  # the client, in its own process
        spec = json.loads(Path(sys.argv[1]).read_text())
        Path(spec["out"]).write_text(json.dumps(_event_loop_runner()(run_clients(spec))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--leave", type=float, default=0.2)
    parser.add_argument("--tokens", type=int, default=300)
    sys.exit(print_results(run(parser.parse_args())))


if __name__ == "__main__":
    main()
