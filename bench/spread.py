"""Two app processes on one Redis and one PostgreSQL, each pinned to its own
core, the fake upstream and the load client sharing both cores as fairly as
a 2-core machine allows; beside them, the same rig with every stream on one
of the processes. Readers are spread over both processes, and a fifth of the
answers are also followed by a second client from the other process
(GET /api/turns/<id>/events, through Redis). Streams held is counted as in
bench/relay.py's ramp, against the pace itself (no direct round here): p99
gap and p99 send-to-receipt delay under 2x the 20 ms pace, and no errors.

    python -m bench.spread [--redis redis://127.0.0.1:6379/11] [--database postgres://...]

A figure, not a target: on two cores the harness takes its share of both.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import redis

from harness import fake_upstream

from . import procs, report
from .rig import FIRST_TOKEN_DELAY, PACE, PROMPT, app_env, app_server, fresh_database, prepare_database

TOKENS = 200
LEVELS = [25, 50, 100, 150, 200, 300]
FOLLOW_EVERY = 5  # a fifth of the answers get a reader on the other process
BOUND_MS = 2 * PACE * 1000  # p99 gap and send-to-receipt delay under twice the pace
APP = "chatstream.asgi:application"


class Spread(procs.Started):
    def __init__(self, work_dir: Path, redis_url: str, database_url: str) -> None:
        super().__init__()
        self.work_dir, self.redis_url, self.database_url = work_dir, redis_url, database_url

    def _start(self) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        self.upstream = self.stack.enter_context(
            fake_upstream.service(
                procs.free_port(),
                log_dir=self.work_dir,
                cpus=None,
                tokens=TOKENS,
                first_token_delay=FIRST_TOKEN_DELAY,
                pace=PACE,
                stamp=True,
            )
        )
        env = app_env(self.work_dir, self.upstream.port) | {
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
        }
        self.key = prepare_database(env)
        self.apps = [
            self.stack.enter_context(
                app_server("uvicorn", procs.free_port(), env, log_dir=self.work_dir, cpus={cpu}, application=APP)
            )
            for cpu in (cpus[0], cpus[-1])
        ]
        self.http = self.stack.enter_context(httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=30))

    def conversations(self, count: int) -> list[str]:
        url = f"http://{procs.HOST}:{self.apps[0].port}/api/conversations"
        return [self.http.post(url, json={}).json()["id"] for _ in range(count)]

    def level(self, streams: int, *, spread: bool) -> dict:
        """`streams` closed-loop workers; `spread`: alternately on each
        process, every FOLLOW_EVERY-th also followed from the other one;
        else all on the first process."""
        ids = self.conversations(streams)
        body = json.dumps({"content": PROMPT})
        a, b = (app.port for app in self.apps)
        ports = [(a if i % 2 == 0 else b) if spread else a for i in range(streams)]
        follow = [(b if port == a else a) if spread and i % FOLLOW_EVERY == 0 else None for i, port in enumerate(ports)]
        length = FIRST_TOKEN_DELAY + TOKENS * PACE
        window = [length, 2 * length]
        spec = {
            "host": procs.HOST,
            "port": a,
            "ports": ports,
            "follow_ports": follow,
            "kind": "relay",
            "headers": {"Authorization": f"Bearer {self.key}"},
            "workers": [[[f"/api/conversations/{conversation}/messages", body]] for conversation in ids],
            "stagger": length,
            "run_for": window[1],
            "window": window,
            "timeout": 30 + window[1] + 3 * length + streams * 0.02,
        }
        return self._round(spec, streams)

    def _round(self, spec: dict, streams: int) -> dict:
        pids = [app.pid for app in self.apps] + [self.upstream.pid]
        client = redis.Redis.from_url(self.redis_url)
        before_cpu = {pid: procs.cpu_seconds(pid) for pid in pids}
        before_redis = client.info("cpu")
        before_pg, before_commits = postgres_cpu_s(), _commits(self.database_url)
        outcome, peaks = procs.run_worker(
            "bench.loadgen", spec, work_dir=self.work_dir, cpus=None, timeout=spec["timeout"] + 15, watch=pids
        )
        time.sleep(0.2)
        after_redis = client.info("cpu")
        pg_cpu, commits = postgres_cpu_s() - before_pg, _commits(self.database_url) - before_commits
        cpu = [procs.cpu_seconds(pid) - before_cpu[pid] for pid in pids]
        redis_cpu = sum(after_redis[k] - before_redis[k] for k in ("used_cpu_user", "used_cpu_sys"))
        gaps, delays = _p99(outcome["gaps_ms"]), _p99(outcome["delays_ms"])
        problems = [*outcome["errors"]]
        if gaps is None or gaps > BOUND_MS or (delays is not None and delays > BOUND_MS):
            problems.append(f"p99 gap {report.fmt(gaps, 1)} ms, delay {report.fmt(delays, 1)} ms")
        tokens = outcome["tokens"] or 1
        return {
            "streams": streams,
            "ok": outcome["ok"],
            "followers": outcome["followers"],
            "followers_ok": outcome["followers_ok"],
            "tokens": outcome["tokens"],
            "follower_tokens": outcome["follower_tokens"],
            "gap_p99_ms": gaps,
            "delay_p99_ms": delays,
            "ttft_p50_ms": _p50(outcome["ttft_ms"]),
            "app_cpu_s": cpu[:2],
            "app_cpu_pct": [c / outcome["wall_s"] * 100 for c in cpu[:2]],
            "app_rss_peak": [peaks[pid]["rss"] for pid in pids[:2]],
            "upstream_cpu_s": cpu[2],
            "redis_cpu_s": redis_cpu,
            "cpu_s_per_1k_tokens": sum(cpu[:2]) / tokens * 1000,
            "redis_cpu_s_per_1k_tokens": redis_cpu / tokens * 1000,
            "answers": outcome["ok"] - outcome["followers_ok"],
            "postgres_cpu_s": pg_cpu,
            "postgres_commits": commits,
            "postgres_cpu_ms_per_answer": pg_cpu / max(1, outcome["ok"] - outcome["followers_ok"]) * 1000,
            "postgres_commits_per_answer": commits / max(1, outcome["ok"] - outcome["followers_ok"]),
            "problems": problems,
            "passed": not problems,
        }


def postgres_cpu_s() -> float:
    """CPU time of every PostgreSQL process on this machine (the server's
    backends included), from /proc."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += procs.cpu_seconds(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended meanwhile
    return total


def _commits(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [name]).fetchone()
    return int(row[0]) if row else 0


def _p99(values: list[float]) -> float | None:
    return sorted(values)[int(0.99 * (len(values) - 1))] if values else None


def _p50(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def ramp(rig: Spread, *, spread: bool, levels: list[int]) -> list[dict]:
    """Every level (the figures past the bar say how it degrades), until two
    in a row have failed."""
    results: list[dict] = []
    for streams in levels:
        results.append(rig.level(streams, spread=spread))
        if len(results) >= 2 and not (results[-1]["passed"] or results[-2]["passed"]):
            break
    return results


def run(*, redis_url: str, database_url: str = "postgres://postgres@127.0.0.1:5432/bench_spread") -> dict:
    fresh_database(database_url)
    subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-spread-") as tmp, Spread(Path(tmp), redis_url, database_url) as rig:
        for spread in (False, True):  # warm both processes up
            rig.level(10, spread=spread)
        return {
            "one_process": ramp(rig, spread=False, levels=LEVELS),
            "two_processes": ramp(rig, spread=True, levels=LEVELS),
        }


def print_results(results: dict) -> None:
    rows = []
    for label in ("one_process", "two_processes"):
        for level in results[label]:
            rows.append(
                [
                    label.replace("_", " "),
                    str(level["streams"]),
                    f"{level['ok']} ({level['followers_ok']} following)",
                    report.fmt(level["gap_p99_ms"], 1),
                    report.fmt(level["delay_p99_ms"], 1),
                    report.fmt(level["ttft_p50_ms"], 1),
                    " + ".join(f"{pct:.0f}" for pct in level["app_cpu_pct"]),
                    report.fmt(level["cpu_s_per_1k_tokens"], 4),
                    report.fmt(level["redis_cpu_s_per_1k_tokens"], 4),
                    f"{level['postgres_cpu_ms_per_answer']:.2f} / {level['postgres_commits_per_answer']:.1f}",
                    "yes" if level["passed"] else "; ".join(level["problems"])[:60],
                ]
            )
    print("\nOne Redis, one PostgreSQL: one process, then two (each on its own core), readers spread")
    headers = [
        "",
        "streams",
        "streams done",
        "gap p99 ms",
        "delay p99 ms",
        "TTFT p50 ms",
        "app CPU % (A + B)",
        "app CPU s / 1k tokens",
        "Redis CPU s / 1k",
        "PostgreSQL CPU ms / commits per answer",
        "held",
    ]
    print(report.table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spread", description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/bench_spread")
    args = parser.parse_args()
    results = run(redis_url=args.redis, database_url=args.database)
    print_results(results)
    print(f"\nresults: {report.save(results, 'spread')}")


if __name__ == "__main__":
    main()
