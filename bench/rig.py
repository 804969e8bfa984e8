"""The processes of the relay benchmark and rounds of streams against them.

    fake upstream (first token after 50 ms, then one every 20 ms, N tokens)
    app under uvicorn, DEBUG=false, SQLite in a temporary directory
    plain Django relay (bench/plain_relay.py) and FastAPI relay
        (bench/fastapi_relay.py) under the same server, on the same CPU as
        the app and behind the same upstream: the peers
    a second fake upstream (2 tokens), app and plain relay, only for time to
        first token at 1 stream: 30 sequential whole streams then take
        seconds, not minutes
    the load client (bench/loadgen.py), a fresh process per round

A round is one of four kinds: "relay" (the app), "plain" (the plain Django
relay), "fastapi" (the FastAPI relay) or "direct" (the load client reading
the upstream itself). The relays sit
idle while the others run; a round's figures for the relay it measured, app
or plain, are under the same `app_*` keys.

All on 127.0.0.1 and free ports, all stopped on the way out. A round reads the
CPU time of the relay it measures and of the upstream from /proc before and
after, and their peak RSS and thread count while it runs.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from harness import fake_upstream

from . import cancel, loadgen, procs
from .stats import per_thousand, summary

FIRST_TOKEN_DELAY, PACE = 0.05, 0.02
TTFT_TOKENS = 2  # the short upstream behind the time-to-first-token app
PROMPT = "Tell me a long story about relays."
DIRECT_BODY = json.dumps(
    {
        "model": "fake",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},  # as the provider asks
    }
)
PLAIN_APPLICATION = "bench.plain_relay:application"
FASTAPI_APPLICATION = "bench.fastapi_relay:app"
PEERS = {"plain": PLAIN_APPLICATION, "fastapi": FASTAPI_APPLICATION}
SETTLE_S = 0.2  # after a round, for closes and saves to finish before CPU is read


def app_env(tmp: Path, upstream_port: int, stack: str | None = None) -> dict[str, str]:
    """The app's environment: chatstream's project as it ships, or (with
    `stack`) served on one of harness/stacks.py's stacks."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "harness.settings" if stack else "chatstream.settings",
        "CHATSTREAM_STACK": stack or "fast",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback; TLS is the proxy's
        # One user sends every message: per-user limits off.
        "CHATSTREAM_MAX_CONCURRENT_STREAMS": "0",
        "CHATSTREAM_MESSAGES_PER_MINUTE": "0",
        "SECRET_KEY": "bench",
        "ALLOWED_HOSTS": procs.HOST,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": f"http://{procs.HOST}:{upstream_port}/v1",
        "LLM_MODEL": "fake",
    }


def plain_env(upstream_port: int) -> dict[str, str]:
    return {**os.environ, "PLAIN_UPSTREAM_URL": f"http://{procs.HOST}:{upstream_port}/v1"}


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [procs.PYTHON, "manage.py", *args], cwd=procs.ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def fresh_database(url: str) -> None:
    """An empty PostgreSQL database at `url`, whatever was there."""
    import psycopg  # here: the runs on SQLite never load it

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def prepare_database(env: dict[str, str]) -> str:
    """Migrate, make a user, and return a fresh API key for it."""
    manage(env, "migrate", "--noinput")
    create_user = "from django.contrib.auth import get_user_model; get_user_model().objects.create_user('bench')"
    manage(env, "shell", "-c", create_user)
    return manage(env, "create_api_key", "bench").strip().splitlines()[-1]


def app_server(
    server: str,
    port: int,
    env: dict[str, str],
    *,
    log_dir: Path,
    cpus,
    application: str = "chatstream.asgi:application",
) -> procs.Service:
    """An ASGI app, chatstream's by default, under uvicorn (production) or
    daphne (what `runserver` uses)."""
    if server == "daphne":
        argv = [procs.PYTHON, "-m", "daphne", "-b", procs.HOST, "-p", str(port), "-v", "0"]
    else:
        argv = [procs.PYTHON, "-m", "uvicorn", "--host", procs.HOST, "--port", str(port)]
        argv += ["--log-level", "warning", "--no-access-log"]
    argv.append(application)
    return procs.Service(f"{server} {port}", argv, port, log_dir=log_dir, env=env, cpus=cpus)


class Rig(procs.Started):
    """The running processes, and rounds of streams against them."""

    def __init__(self, size: dict, layout: dict, work_dir: Path, server: str = "uvicorn", app_stack: str | None = None):
        """`app_stack`: serve the app on that stack of harness/stacks.py, and
        leave the plain relay out (bench/stacks.py); None: the project as it
        ships, with the plain relay beside it (bench/relay.py)."""
        super().__init__()
        self.size, self.layout, self.work_dir, self.server = size, layout, work_dir, server
        self.app_stack = app_stack

    def _start(self) -> None:
        harness, tmp = self.layout["harness"], self.work_dir
        timing = {
            "first_token_delay": self.size.get("first_token_delay", FIRST_TOKEN_DELAY),
            "pace": self.size.get("pace", PACE),
        }
        self.upstream = self._enter(
            fake_upstream.service(
                procs.free_port(),
                log_dir=tmp,
                cpus=harness,
                tokens=self.size["tokens"],
                record_calls=True,
                reasoning_tokens=self.size.get("reasoning_tokens", 0),  # bench/reasoning.py
                stamp=self.size.get("stamp", False),  # send-to-receipt delays (bench/relay.py)
                **timing,
            )
        )
        self.short_upstream = self._enter(
            fake_upstream.service(procs.free_port(), log_dir=tmp, cpus=harness, tokens=TTFT_TOKENS, **timing)
        )
        env = app_env(tmp, self.upstream.port, self.app_stack)
        self.key = prepare_database(env)
        application = "harness.asgi:application" if self.app_stack else "chatstream.asgi:application"
        self.app = self._enter(self._app(env, application))
        self.ttft_app = self._enter(self._app(app_env(tmp, self.short_upstream.port, self.app_stack), application))
        self.peers: dict[str, procs.Service] = {}
        self.ttft_peers: dict[str, procs.Service] = {}
        if self.app_stack is None:
            for kind, application in PEERS.items():
                self.peers[kind] = self._peer_app(self.upstream, application)
                self.ttft_peers[kind] = self._peer_app(self.short_upstream, application)
            self.peers["floor"] = self._floor()
        self.http = self.stack.enter_context(httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=30))

    def _app(self, env: dict[str, str], application: str) -> procs.Service:
        port, cpus = procs.free_port(), self.layout["measured"]
        return app_server(self.server, port, env, log_dir=self.work_dir, cpus=cpus, application=application)

    def _enter(self, service: procs.Service) -> procs.Service:
        return self.stack.enter_context(service)

    def _peer_app(self, upstream: procs.Service, application: str) -> procs.Service:
        """A peer relay under the app's server, on the app's CPU."""
        port, env = procs.free_port(), plain_env(upstream.port)
        server = app_server(
            self.server, port, env, log_dir=self.work_dir, cpus=self.layout["measured"], application=application
        )
        return self._enter(server)

    def _floor(self) -> procs.Service:
        """bench/floor_relay.py: what no relay can go below, on the app's CPU."""
        port = procs.free_port()
        argv = [
            procs.PYTHON,
            "-m",
            "bench.floor_relay",
            "--port",
            str(port),
            "--upstream-port",
            str(self.upstream.port),
        ]
        return self._enter(
            procs.Service(f"floor relay {port}", argv, port, log_dir=self.work_dir, cpus=self.layout["measured"])
        )

    def _servers(
        self, kind: str, ttft: bool, app: procs.Service | None = None
    ) -> tuple[procs.Service | None, procs.Service]:
        """The relay a round measures (None for a direct round) and the upstream
        behind it; `app` stands in for the main app (bench/scale.py's others)."""
        if ttft:
            relays, upstream = {"relay": self.ttft_app, **self.ttft_peers}, self.short_upstream
        else:
            relays, upstream = {"relay": app or self.app, **self.peers}, self.upstream
        return relays.get(kind), upstream

    # --- setup outside the timed part ------------------------------------------

    def new_conversations(self, app: procs.Service, count: int) -> list[str]:
        url = f"http://{procs.HOST}:{app.port}/api/conversations"
        ids = []
        for _ in range(count):
            response = self.http.post(url, json={})
            response.raise_for_status()
            ids.append(response.json()["id"])
        return ids

    def _workers(self, kind: str, app: procs.Service, workers: int, per_worker: int) -> list[list[list[str]]]:
        """Each worker's requests. A relay worker gets its own conversations;
        several streams may share one (its history grows, as a chat does).
        The peers keep no conversations: one request serves them all."""
        if kind == "direct":
            return [[["/v1/chat/completions", DIRECT_BODY]]] * workers
        body = json.dumps({"content": PROMPT})
        if kind in PEERS or kind == "floor":
            return [[["/relay", body]]] * workers
        ids = iter(self.new_conversations(app, workers * per_worker))
        return [[[f"/api/conversations/{next(ids)}/messages", body] for _ in range(per_worker)] for _ in range(workers)]

    # --- rounds ----------------------------------------------------------------

    def stream_seconds(self, tokens: int) -> float:
        return self.size.get("first_token_delay", FIRST_TOKEN_DELAY) + tokens * self.size.get("pace", PACE)

    def steady(self, kind: str, streams: int, app: procs.Service | None = None) -> dict:
        """`streams` workers in closed loops against the main app (or `app`,
        or the plain relay, or the upstream), starts staggered over one
        stream's length so arrivals are steady; figures from the next
        `window_streams` stream lengths."""
        length = self.stream_seconds(self.size["tokens"])
        window = [length, length * (1 + self.size["window_streams"])]
        spec = {"stagger": length, "run_for": window[1], "window": window}
        timeout = 20 + window[1] + 3 * length + streams * 0.02
        workers = self._workers(kind, app or self.app, streams, 1)
        return self._round(kind, workers, spec, timeout, ttft=False, app=app)

    def sequential(self, kind: str, samples: int) -> dict:
        """One short stream at a time through the TTFT app, plain relay or
        short upstream, `samples` times, with a short pause between."""
        spec = {"streams_per_worker": samples, "pause": 0.05}
        timeout = 20 + samples * (self.stream_seconds(TTFT_TOKENS) + 0.05) * 3
        return self._round(kind, self._workers(kind, self.ttft_app, 1, samples), spec, timeout, ttft=True)

    def _round(
        self, kind: str, workers: list, spec: dict, timeout: float, *, ttft: bool, app: procs.Service | None = None
    ) -> dict:
        """Run the load client once, with the servers' CPU time and peak RSS."""
        relay, upstream = self._servers(kind, ttft, app)
        spec |= {
            "host": procs.HOST,
            "port": (relay or upstream).port,
            "kind": kind,
            "headers": {"Authorization": f"Bearer {self.key}"} if kind == "relay" else {},
            "workers": workers,
            "timeout": timeout,
        }
        relay_pid = None if relay is None else relay.pid
        pids = (upstream.pid,) if relay_pid is None else (relay_pid, upstream.pid)
        idle = {pid: procs.rss_bytes(pid) for pid in pids}
        cpu = {pid: procs.cpu_seconds(pid) for pid in pids}
        outcome, peaks = procs.run_worker(
            "bench.loadgen", spec, work_dir=self.work_dir, cpus=self.layout["harness"], timeout=timeout + 15, watch=pids
        )
        time.sleep(SETTLE_S)
        cpu = {pid: procs.cpu_seconds(pid) - before for pid, before in cpu.items()}
        return _round_record(
            kind, outcome, cpu=cpu, idle=idle, peaks=peaks, app=relay_pid, upstream=upstream.pid, workers=len(workers)
        )

    def cancel_propagation(self, samples: int) -> dict:
        """Client abort to upstream request closed, through the app and direct."""
        conversation_id = self.new_conversations(self.app, 1)[0]
        relay_request = loadgen.build_request(
            procs.HOST,
            self.app.port,
            f"/api/conversations/{conversation_id}/messages",
            json.dumps({"content": PROMPT}).encode(),
            {"Authorization": f"Bearer {self.key}"},
        )
        direct_request = loadgen.build_request(
            procs.HOST, self.upstream.port, "/v1/chat/completions", DIRECT_BODY.encode(), {}
        )
        return {
            "relay": cancel.measure("relay", self.app.port, relay_request, self.upstream.port, samples),
            "direct": cancel.measure("direct", self.upstream.port, direct_request, self.upstream.port, samples),
        }

    def warm_up(self) -> None:
        """First requests pay for imports, pools and caches; keep them out of the figures."""
        relays = ("relay", *PEERS) if self.app_stack is None else ("relay",)
        for kind in (*relays, "direct"):
            self.sequential(kind, 5)
        for kind in relays:
            self._round(kind, self._workers(kind, self.app, 5, 1), {"streams_per_worker": 1}, 30, ttft=False)


def _round_record(kind: str, outcome: dict, *, cpu, idle, peaks, app: int | None, upstream: int, workers: int) -> dict:
    """The round's figures; `app` is the relay it measured (the app or the
    plain relay, None for a direct round)."""
    wall = outcome["wall_s"]
    tokens = outcome["tokens"]

    def usage(pid: int, who: str) -> dict:
        return {
            f"{who}_cpu_s": cpu[pid],
            f"{who}_cpu_pct": cpu[pid] / wall * 100,
            f"{who}_cpu_s_per_1k_tokens": per_thousand(cpu[pid], tokens),
            f"{who}_rss_idle": idle[pid],
            f"{who}_rss_peak": peaks[pid]["rss"],
            f"{who}_threads_peak": peaks[pid]["threads"],
        }

    record = {
        "kind": kind,
        "workers": workers,
        "streams": outcome["streams"],
        "ok": outcome["ok"],
        "errors": outcome["errors"],
        "in_flight": outcome["in_flight"],
        "streaming": outcome["streaming"],
        "ttft_ms": summary(outcome["ttft_ms"]),
        "head_ms": summary(outcome["head_ms"]),
        "gap_ms": summary(outcome["gaps_ms"]),
        "tokens": tokens,
        "stamped": outcome["stamped"],
        "delay_ms": summary(outcome["delays_ms"]),
        "event_rate": summary(outcome["event_rates"]),
        "events": outcome["events"],
        "wall_s": wall,
        "client_cpu_s": outcome["cpu_s"],
        "client_cpu_pct": outcome["cpu_s"] / wall * 100,
        "client_cpu_s_per_1k_tokens": per_thousand(outcome["cpu_s"], tokens),
        **usage(upstream, "upstream"),
    }
    # A direct round leaves the relays idle: their numbers would only be noise.
    return record | ({"app_cpu_pct": None} if app is None else usage(app, "app"))
