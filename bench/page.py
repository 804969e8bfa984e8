"""The chat page on long blocks: each long answer of the browser tests
(tests/browser/test_rendering.py: 100 KB of blocks ending in a 100 KB
paragraph, and a 5,000-line code block; 50,000 tokens each at 1,000 a second,
through the real app and the fake upstream) streamed once into Chromium, on a
quiet machine and then with one CPU kept busy by a spinning process pinned to
it. Prints, for each, the main-thread tasks over 50 ms (PerformanceObserver
longtask), the longest task and the frames drawn, and saves the figures
under bench/results/.

    python -m bench.page [--quiet-only | --busy-only] [--kind paragraph --kind code]

It runs the browser test itself (pytest, one try per answer), so it needs
what those need: PostgreSQL or SQLite in DATABASE_URL, Redis in
CHATSTREAM_TEST_REDIS_URL, Debian's chromium. About a minute per answer and
condition: about five minutes in all.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from . import procs

TEST = "tests/browser/test_rendering.py::test_a_long_answer_streams_without_long_tasks"
ARTIFACTS = procs.ROOT / "tests" / "artifacts"
KINDS = ("paragraph", "code")  # the test's LONG_ANSWERS
SPIN = "while True: pass"


def busy_cpu() -> int:
    """The CPU the spinning process takes: the last this process may use."""
    return max(os.sched_getaffinity(0))


def stream(kinds: list[str]) -> dict[str, dict]:
    """Each answer streamed once by the browser test: its figures by kind."""
    for kind in kinds:
        (ARTIFACTS / artifact(kind)).unlink(missing_ok=True)
    load = os.getloadavg()[0]
    env = {**os.environ, "CHATSTREAM_LONG_ANSWER_TRIES": "1", "CHATSTREAM_LONG_ANSWER_RATE": "1000"}
    argv = [procs.PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST, "-k", " or ".join(kinds)]
    done = subprocess.run(argv, cwd=procs.ROOT, env=env, capture_output=True, text=True, timeout=300 * len(kinds))
    if not all((ARTIFACTS / artifact(kind)).exists() for kind in kinds):
        print(done.stdout[-3000:], file=sys.stderr)
    # The machine's load as the run started and ended: other work on it
    # (another test run) shows here, and in the figures.
    return {kind: {**figures(kind), "load_before": load, "load_after": os.getloadavg()[0]} for kind in kinds}


def artifact(kind: str) -> str:
    return f"long-answer-{kind}.json"


def figures(kind: str) -> dict:
    path = ARTIFACTS / artifact(kind)
    if not path.exists():
        return {"error": "the test wrote no figures (see its output: pytest " + TEST + ")"}
    run = json.loads(path.read_text())[-1]
    tasks = run["long_tasks_ms"]
    return {
        "tasks_over_50ms": sum(task > 50 for task in tasks),
        "longest_ms": max(tasks, default=0),
        "frames": run["frames"],
        "seconds": run["seconds"],
        "tokens": run["tokens"],
    }


def run(kinds: list[str], conditions: list[str]) -> dict:
    results = {}
    for condition in conditions:
        print(f"streaming {', '.join(kinds)}: {condition} ...", file=sys.stderr, flush=True)
        spinner = None
        if condition == "busy":
            spinner = subprocess.Popen(["taskset", "-c", str(busy_cpu()), procs.PYTHON, "-c", SPIN])
        try:
            results[condition] = stream(kinds)
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
    return results


def print_table(results: dict) -> None:
    print(f"{'answer':<11}{'machine':<9}{'tasks > 50 ms':>14}{'longest ms':>12}{'frames':>8}{'seconds':>9}{'load':>11}")
    for condition, by_kind in results.items():
        for kind, row in by_kind.items():
            if "error" in row:
                print(f"{kind:<11}{condition:<9}  {row['error']}")
                continue
            print(
                f"{kind:<11}{condition:<9}{row['tasks_over_50ms']:>14}{row['longest_ms']:>12.0f}"
                f"{row['frames']:>8}{row['seconds']:>9}  {row['load_before']:>4.1f}-{row['load_after']:<4.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__)
    machine = parser.add_mutually_exclusive_group()
    machine.add_argument("--quiet-only", action="store_true", help="only on a quiet machine")
    machine.add_argument("--busy-only", action="store_true", help=f"only with CPU {busy_cpu()} kept busy")
    parser.add_argument("--kind", action="append", choices=KINDS, help="one answer")
    args = parser.parse_args()
    kinds = [kind for kind in KINDS if not args.kind or kind in args.kind]
    conditions = ["quiet"] * (not args.busy_only) + ["busy"] * (not args.quiet_only)
    results = run(kinds, conditions)
    print_table(results)
    out = procs.ROOT / "bench" / "results" / f"page-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out.relative_to(procs.ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
