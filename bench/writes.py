"""Database writes per turn: every INSERT, UPDATE and DELETE the app runs
for one message and its answer, by table, and the transactions they make.

The app runs in a child process (its own Django, the demo model at full
speed, SQLite in a temporary directory, or DATABASE_URL if it is PostgreSQL),
with Django's cursor counting write statements; a series of messages is sent
through a real server after a warm-up, and the counts are divided by the turns.

    python -m bench.writes [--turns 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from . import procs, report

WRITES = ("INSERT", "UPDATE", "DELETE")


def run(turns: int = 20) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        out = Path(tmp) / "writes.json"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatstream.settings",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SECRET_KEY": "bench",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'writes.sqlite3'}",
            "LLM_PROVIDER": "demo",
            "LLM_DEMO_TOKENS_PER_SECOND": "100000",
            "LLM_DEMO_FIRST_TOKEN_DELAY": "0",
            "LOG_LEVEL": "WARNING",
            "CHATSTREAM_MESSAGES_PER_MINUTE": "0",  # one user sends them all, quickly
        }
        if os.environ.get("DATABASE_URL", "").startswith("postgres"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        argv = [procs.PYTHON, "-m", "bench.writes", "--child", str(out), "--turns", str(turns)]
        subprocess.run(argv, cwd=procs.ROOT, env=env, check=True, timeout=300)
        return json.loads(out.read_text())


# --- the child: the app, counted ----------------------------------------------------


def _count_writes(counts: Counter) -> None:
    """Count write statements (by kind and table) and transactions, in every thread."""
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    lock = threading.Lock()  # the app's database threads write concurrently

    def note(name: str) -> None:
        with lock:
            counts[name] += 1

    def counted(execute):
        def wrapper(self, sql, *args, **kwargs):
            words = sql.split(None, 3)
            kind = words[0].upper() if words else ""
            if kind in WRITES:
                table = words[2] if kind in ("INSERT", "DELETE") else words[1]
                note(f"{kind} {table.strip(chr(34))}")
                if not self.db.in_atomic_block:
                    note("transactions")  # autocommit: the statement is its own transaction
            return execute(self, sql, *args, **kwargs)

        return wrapper

    CursorWrapper.execute = counted(CursorWrapper.execute)
    CursorWrapper.executemany = counted(CursorWrapper.executemany)
    commit = BaseDatabaseWrapper.commit

    def counted_commit(self):
        note("transactions")
        return commit(self)

    BaseDatabaseWrapper.commit = counted_commit


def child(out: Path, turns: int) -> None:
    import django

    django.setup()
    import httpx
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from chatstream.asgi import application
    from conversations.access import api_keys
    from harness.servers import ServerThread

    call_command("migrate", verbosity=0)
    _, key = api_keys.create_api_key(user=get_user_model().objects.create_user("writes"))
    counts: Counter = Counter()
    with (
        ServerThread(application) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
    ):
        conversation = http.post("/api/conversations", json={}).json()["id"]

        def send() -> None:
            with http.stream("POST", f"/api/conversations/{conversation}/messages", json={"content": "Hi"}) as reply:
                reply.raise_for_status()
                reply.read()

        send()  # warm-up: first connections, the key's last-used stamp
        time.sleep(0.2)
        _count_writes(counts)
        for _ in range(turns):
            send()
        time.sleep(0.5)  # the last answer's save and its on-commit job
    out.write_text(json.dumps({"turns": turns, "counts": dict(counts), "database": _vendor()}))


def _vendor() -> str:
    from django.db import connection

    return connection.vendor


def print_writes(results: dict) -> None:
    turns, counts = results["turns"], results["counts"]
    rows = [[name, f"{count / turns:.2f}"] for name, count in sorted(counts.items()) if name != "transactions"]
    total = sum(count for name, count in counts.items() if name != "transactions")
    rows += [
        ["all write statements", f"{total / turns:.2f}"],
        ["transactions", f"{counts.get('transactions', 0) / turns:.2f}"],
    ]
    print(f"\n== Database writes per turn (a message and its answer; {turns} turns on {results['database']})")
    print(report.table(["statement", "per turn"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.turns)
        return
    print_writes(run(args.turns))


if __name__ == "__main__":
    sys.exit(main())
