"""What the benchmarks measure of a process (its CPU time and memory from
/proc), how they pin processes to CPUs, and worker processes that report back
through files. The servers themselves come from harness/.

Linux only (/proc, sched_setaffinity).
"""

import json
import os
import time
from contextlib import ExitStack
from pathlib import Path

from harness.servers import HOST, PYTHON, ROOT, Service, free_port, popen, stop

__all__ = ["HOST", "PYTHON", "ROOT", "Service", "free_port", "popen", "stop"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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


class Started:
    """Processes started together (`_start`, entering each into `self.stack`)
    and stopped together, however starting them ends."""

    def __init__(self) -> None:
        self.stack = ExitStack()

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def _start(self) -> None:
        raise NotImplementedError
