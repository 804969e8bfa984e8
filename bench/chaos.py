"""Chaos: two uvicorn processes on Redis and PostgreSQL, clients streaming
answers through both, and one process killed with -9 every few seconds and
started again. Not part of the suite (it takes minutes); run by hand:

    python -m bench.chaos [--streams 200] [--seconds 120] [--kill-every 10]
        [--database postgres://postgres@127.0.0.1:5432/chaos] [--redis redis://127.0.0.1:6379/12]

It checks what the product promises when a process dies:
- every message whose answer started (the client got `start`) ends with
  exactly one saved answer, holding at least the text its client saw;
- no 5xx (a connection cut by the kill is not a response);
- no user is left over a limit: once the slot leases lapse, every user's
  next message is accepted.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness import fake_upstream

from . import procs, report
from .rig import app_env, fresh_database, manage

USERS = 10
STREAMS_PER_USER = 3  # CHATSTREAM_MAX_CONCURRENT_STREAMS
LEASE_SECONDS = 3.0  # CHATSTREAM_ANSWER_LEASE_SECONDS: a killed process's answers are saved within ~this
SLOT_LEASE_SECONDS = 3 * LEASE_SECONDS  # limits.slot_lease_seconds()


@dataclass
class Outcome:
    status: int | None = None  # the response's, None if the connection was refused or cut first
    turn_id: str = ""
    seen: str = ""
    ended: str = ""  # done, error, or "" when the stream was cut


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    kills: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _stream_once(base: str, key: str) -> Outcome:
    outcome = Outcome()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            created = client.post("/api/conversations", json={})
            if created.status_code != 201:
                outcome.status = created.status_code
                return outcome
            path = f"/api/conversations/{created.json()['id']}/messages"
            with client.stream("POST", path, json={"content": "Tell me a long story"}) as response:
                outcome.status = response.status_code
                if response.status_code != 200:
                    return outcome
                _read(response, outcome)
    except httpx.HTTPError:
        pass  # refused (the process is down) or cut (killed mid-answer)
    return outcome


def _read(response: httpx.Response, outcome: Outcome) -> None:
    event, data = "", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif not line and event:
            if event == "start":
                outcome.turn_id = json.loads(data)["turn_id"]
            elif event == "delta":
                outcome.seen += json.loads(data)["text"]
            elif event in ("done", "error"):
                outcome.ended = event
                return
            event = ""


def _client(run: Run, bases: list[str], key: str, until: float, budget: Counter) -> None:
    while time.monotonic() < until:
        with run.lock:
            if budget["left"] <= 0:
                return
            budget["left"] -= 1
        outcome = _stream_once(random.choice(bases), key)
        with run.lock:
            run.outcomes.append(outcome)
        if outcome.status in (None, 429):
            time.sleep(0.5)


def _kill_and_restart(servers: list[procs.Service], every: float, until: float, run: Run) -> None:
    """On the main thread: a server started from another thread would get
    SIGTERM when that thread ends (the harness sets a parent-death signal,
    which Linux ties to the thread)."""
    victim = 0
    while time.monotonic() + every < until:
        time.sleep(every)
        server = servers[victim]
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait()
        server.__enter__()  # started again on its port
        run.kills += 1
        victim = 1 - victim


def _check(env: dict, run: Run) -> dict:
    """What the database holds for each answer that started."""
    started = {o.turn_id: o.seen for o in run.outcomes if o.turn_id}
    script = (
        "import json, sys\n"
        "from conversations.models import Turn\n"
        "ids = json.loads(sys.stdin.read())\n"
        "rows = {str(t.pk): (t.content, t.finish_reason, t.error_code) for t in Turn.objects.filter(pk__in=ids)}\n"
        "lost = Turn.objects.filter(role='user').exclude(reply_id__in=Turn.objects.values('pk')).count()\n"
        "print(json.dumps({'rows': rows, 'questions_without_answer': lost}))\n"
    )
    done = subprocess.run(
        [procs.PYTHON, "manage.py", "shell", "-c", script],
        input=json.dumps(list(started)),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    rows = found["rows"]
    missing = [turn for turn in started if turn not in rows]
    short = [turn for turn, seen in started.items() if turn in rows and not rows[turn][0].startswith(seen)]
    reasons = Counter(f"{rows[t][1]}/{rows[t][2] or '-'}" for t in started if t in rows)
    return {
        "started": len(started),
        "saved": len(started) - len(missing),
        "missing": len(missing),
        "shorter_than_seen": len(short),
        "ends": dict(reasons),
        "questions_without_answer": found["questions_without_answer"],
    }


MAKE_USERS = f"""
from django.contrib.auth import get_user_model
from conversations.access.api_keys import create_api_key
for index in range({USERS}):
    print(create_api_key(user=get_user_model().objects.create_user(f"chaos{{index}}"))[1])
"""


def _limits_free(bases: list[str], keys: list[str]) -> int:
    """Users whose next message is refused as over a limit."""
    refused = 0
    for key in keys:
        with httpx.Client(base_url=bases[0], headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            conversation = client.post("/api/conversations", json={}).json()["id"]
            response = client.post(f"/api/conversations/{conversation}/messages", json={"content": "Still there?"})
            refused += response.status_code == 429
    return refused


def run(*, streams: int, seconds: float, kill_every: float, database: str, redis_url: str) -> dict:
    subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp_name:
        tmp = Path(os.environ.get("CHAOS_LOGS") or tmp_name)
        upstream_port = procs.free_port()
        upstream = fake_upstream.service(
            upstream_port, log_dir=tmp, cpus=None, first_token_delay=0.05, pace=0.02, tokens=150
        )
        env = app_env(tmp, upstream_port) | {
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "CHATSTREAM_MAX_CONCURRENT_STREAMS": str(STREAMS_PER_USER),
            "CHATSTREAM_ANSWER_LEASE_SECONDS": str(LEASE_SECONDS),
            "CHATSTREAM_ON_DISCONNECT": "cancel",
        }
        fresh_database(database)
        manage(env, "migrate", "--noinput")
        keys = [word for word in manage(env, "shell", "-c", MAKE_USERS).split() if word.startswith("cs_")]
        with upstream:
            servers = [_server(env, tmp, name) for name in ("a", "b")]
            for server in servers:
                server.__enter__()
            try:
                bases = [f"http://{procs.HOST}:{server.port}" for server in servers]
                result = Run()
                until = time.monotonic() + seconds
                budget = Counter(left=streams)
                threads = [
                    threading.Thread(target=_client, args=(result, bases, key, until, budget), daemon=True)
                    for key in keys
                    for _ in range(STREAMS_PER_USER)
                ]
                for thread in threads:
                    thread.start()
                _kill_and_restart(servers, kill_every, until, result)
                for thread in threads:
                    thread.join()
                crashed = [server.name for server in servers if server.proc.poll() is not None]
                for server in servers:
                    if server.proc.poll() is not None:  # died on its own: a finding, and started again
                        server.__enter__()
                time.sleep(LEASE_SECONDS * 3)  # the last kill's answers are found and saved
                checked = _check(env, result)
                time.sleep(SLOT_LEASE_SECONDS + 1)  # the killed processes' slots lapse
                over_limit = _limits_free(bases, keys)
            finally:
                for server in servers:
                    server.__exit__()
    statuses = Counter(str(o.status) for o in result.outcomes)
    return {
        "seconds": seconds,
        "kill_every": kill_every,
        "kills": result.kills,
        "messages": len(result.outcomes),
        "statuses": dict(statuses),
        "server_errors": sum(o.status is not None and o.status >= 500 for o in result.outcomes),
        "cut_mid_answer": sum(bool(o.turn_id) and not o.ended for o in result.outcomes),
        **checked,
        "users_over_a_limit_after": over_limit,
        "servers_down_at_the_end": crashed,
    }


def _server(env: dict, tmp: Path, name: str) -> procs.Service:
    port = procs.free_port()
    argv = [procs.PYTHON, "-m", "uvicorn", "chatstream.asgi:application", "--host", procs.HOST, "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log"]
    return procs.Service(f"server {name}", argv, port, log_dir=tmp, env=env)


def print_results(results: dict) -> None:
    print(f"\n== Chaos: two uvicorn processes on Redis and PostgreSQL, one killed -9 every {results['kill_every']:g} s")
    for name, value in results.items():
        print(f"{name:28} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--kill-every", type=float, default=10)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/chaos")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    results = run(
        streams=args.streams,
        seconds=args.seconds,
        kill_every=args.kill_every,
        database=args.database,
        redis_url=args.redis,
    )
    print_results(results)
    print(f"results: {report.save({'chaos': results}, 'chaos')}")


if __name__ == "__main__":
    main()
