"""Child processes for the benchmarks: free ports, servers that always stop,
CPU pinning, and what /proc says about a process's CPU time and memory.

Linux only (/proc, sched_setaffinity, prctl).
"""

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it for port 0)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (all its threads)."""
    # The command name in field 2 may hold spaces; count fields after its ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_layout(pin: bool) -> dict[str, set[int] | None]:
    """Which CPUs each role may use. With two or more CPUs and `pin`, the
    process being measured gets CPU 0 to itself, and the harness (fake
    upstream, load client) shares the rest, so neither steals from the other."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return {"measured": None, "harness": None}
    return {"measured": {cpus[0]}, "harness": set(cpus[1:])}


def describe_layout(layout: dict[str, set[int] | None]) -> str:
    if layout["measured"] is None:
        return "not pinned"
    return f"measured process on CPU {sorted(layout['measured'])}, harness on CPU {sorted(layout['harness'] or ())}"


def _child_setup(cpus: set[int] | None):
    """preexec_fn for children: pin them, and have the kernel SIGTERM them if
    the bench dies, so no server outlives a crashed or killed run."""

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def popen(argv: list[str], *, cpus: set[int] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, preexec_fn=_child_setup(cpus), **kwargs)


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

    def __init__(self, name: str, argv: list[str], port: int, *, log_dir: Path, env=None, cpus=None):
        self.name, self.argv, self.port = name, argv, port
        self.env, self.cpus = env, cpus
        self.log_path = Path(log_dir) / f"{name.replace(' ', '-')}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> "Service":
        with open(self.log_path, "wb") as log:
            self.proc = popen(self.argv, cpus=self.cpus, env=self.env, stdout=log, stderr=subprocess.STDOUT)
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


def fake_upstream(
    port: int,
    *,
    log_dir: Path,
    cpus,
    first_token_delay: float,
    pace: float,
    tokens: int,
    token_chars: int = 0,
    record_calls: bool = False,
) -> Service:
    argv = [PYTHON, "-m", "tests.fake_upstream", "--port", str(port)]
    argv += ["--first-token-delay", str(first_token_delay), "--pace", str(pace), "--tokens", str(tokens)]
    if token_chars:
        argv += ["--token-chars", str(token_chars)]
    if record_calls:
        argv += ["--record-calls"]
    return Service(f"fake upstream {port}", argv, port, log_dir=log_dir, cpus=cpus)


def run_worker(module: str, spec: dict, *, work_dir: Path, cpus=None, timeout: float, watch=()) -> tuple[dict, dict]:
    """Run `python -m <module> <spec file>` and return the JSON it writes to
    spec["out"], with the peak RSS and thread count of each pid in `watch`
    while it ran: {pid: {"rss": bytes, "threads": n}}.

    Spec and result travel through files: a pipe could fill up while we poll."""
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    spec_path, out_path = Path(work_dir) / f"spec-{stamp}.json", Path(work_dir) / f"out-{stamp}.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
    peaks = {pid: {"rss": 0, "threads": 0} for pid in watch}
    proc = popen([PYTHON, "-m", module, str(spec_path)], cpus=cpus)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            for pid, peak in peaks.items():
                peak["rss"], peak["threads"] = max(peak["rss"], rss_bytes(pid)), max(peak["threads"], thread_count(pid))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{module} ran past {timeout:g} s")
            time.sleep(0.05)
    finally:
        stop(proc, grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed with exit status {proc.returncode}")
    return json.loads(out_path.read_text()), peaks
