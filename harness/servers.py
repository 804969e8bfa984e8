"""Real servers on loopback, for the tests and the benchmarks: an ASGI app
served by uvicorn in a thread, and server processes that are ready once
their port accepts connections and always stop (even if their parent dies).

Linux only (prctl).
"""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"

_PR_SET_PDEATHSIG = 1

# Ports free_port has handed out: the kernel may pick the same free port
# twice, and two servers started on it leave the second's port answered by
# the first (a test then talks to the wrong process).
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it for port 0), never
    one this process was given before."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _child_setup(cpus: set[int] | None):
    """preexec_fn for children: pin them, and have the kernel SIGTERM them if
    their parent dies, so no server outlives a crashed or killed run."""

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def popen(argv: list[str], *, cpus: set[int] | None = None, cwd: Path = ROOT, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, preexec_fn=_child_setup(cpus), **kwargs)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not gone after `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Service:
    """A server subprocess, ready once its port accepts connections and always
    stopped on exit. Its output goes to a log file, never to a pipe that could
    fill up and stall it."""

    def __init__(self, name: str, argv: list[str], port: int, *, log_dir: Path, env=None, cpus=None, cwd=ROOT):
        self.name, self.argv, self.port = name, argv, port
        self.env, self.cpus, self.cwd = env, cpus, cwd
        self.log_path = Path(log_dir) / f"{name.replace(' ', '-')}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> "Service":
        with open(self.log_path, "wb") as log:
            self.proc = popen(
                self.argv, cpus=self.cpus, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready(timeout=30.0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop(self.proc)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {HOST}:{self.port} within {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ServerThread:
    """Serve an ASGI app with uvicorn on a free loopback port, in a thread.
    `lifespan="on"` for an app that starts its work in its lifespan (an MCP
    server's session manager)."""

    def __init__(self, app, *, lifespan: str = "off") -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan, loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def run(self, coroutine, timeout: float = 10):
        """Run a coroutine on the server's event loop and return its result."""
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"
