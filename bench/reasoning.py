"""What a thinking model's output costs to relay: the app under uvicorn on
the project's stack, pinned as bench/relay.py pins it, at 100 streams of
100-token answers from the fake upstream, once with every token answer text
and once with 95 of them reasoning (`delta.reasoning_content`) before a
5-token answer, in turn. The target: CPU per relayed reasoning token no
higher than per answer token (ratio at most 1.0x, within the run's noise).

    python -m bench.reasoning [--quick] [--no-pin]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from . import procs, report
from .rig import FIRST_TOKEN_DELAY, PACE, Rig

SIZES = {
    "full": {"tokens": 100, "window_streams": 2, "streams": 100, "rounds": 3},
    "quick": {"tokens": 50, "window_streams": 1, "streams": 50, "rounds": 1},
}
REASONING_SHARE = 0.95
KINDS = ("answer", "reasoning")


def measure(kind: str, size: dict, layout: dict, work_dir: Path) -> dict:
    work_dir.mkdir()
    reasoning_tokens = round(size["tokens"] * REASONING_SHARE) if kind == "reasoning" else 0
    with Rig({**size, "reasoning_tokens": reasoning_tokens}, layout, work_dir, app_stack="fast") as rig:
        rig.warm_up()
        many = rig.steady("relay", size["streams"])
    return {
        "cpu_s_per_1k_tokens": many["app_cpu_s_per_1k_tokens"],
        "gap_p99_ms": many["gap_ms"]["p99"],
        "errors": many["errors"],
    }


def run(*, quick: bool = False, pin: bool = True) -> dict:
    size = dict(SIZES["quick" if quick else "full"], first_token_delay=FIRST_TOKEN_DELAY, pace=PACE)
    layout = procs.cpu_layout(pin)
    rounds: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-reasoning-") as tmp:
        for number in range(size["rounds"]):
            for kind in KINDS:
                rounds[kind].append(measure(kind, size, layout, Path(tmp) / f"{kind}-{number}"))
    medians = {
        kind: {
            "cpu_s_per_1k_tokens": statistics.median(r["cpu_s_per_1k_tokens"] for r in measured),
            "gap_p99_ms": statistics.median(r["gap_p99_ms"] for r in measured),
            "errors": [error for r in measured for error in r["errors"]],
        }
        for kind, measured in rounds.items()
    }
    return {"size": size, "layout": procs.describe_layout(layout), "kinds": medians, "rounds": rounds}


def print_results(results: dict) -> None:
    size, kinds = results["size"], results["kinds"]
    answer = kinds["answer"]["cpu_s_per_1k_tokens"]
    print(
        f"\n== Reasoning against answer tokens: CPU per 1k relayed tokens at {size['streams']} streams of "
        f"{size['tokens']}-token answers ({results['layout']}), medians of {size['rounds']} round(s) taken in turn"
    )
    rows = []
    for kind, figures in kinds.items():
        cpu = figures["cpu_s_per_1k_tokens"]
        label = "all answer text" if kind == "answer" else f"{REASONING_SHARE:.0%} reasoning, then the answer"
        rows.append(
            [
                label,
                report.fmt(cpu, 4),
                f"{cpu / answer:.2f}x" if answer else "—",
                report.fmt(figures["gap_p99_ms"], 1),
                str(len(figures["errors"])),
            ]
        )
    headers = ["tokens", "CPU s / 1k tokens", "vs answer", "gap p99 ms", "errors"]
    print(report.table(headers, rows))
    per_round = [
        f"{r['cpu_s_per_1k_tokens'] / a['cpu_s_per_1k_tokens']:.2f}"
        for a, r in zip(results["rounds"]["answer"], results["rounds"]["reasoning"], strict=True)
    ]
    print(f"reasoning / answer per round: {', '.join(per_round)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reasoning", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    results = run(quick=args.quick, pin=args.pin)
    print_results(results)
    print(f"\nresults: {report.save({'reasoning': results}, 'bench-reasoning')}")


if __name__ == "__main__":
    main()
