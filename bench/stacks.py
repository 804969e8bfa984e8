"""What the opt-in handler and middleware each save: the app under uvicorn
on each stack of harness/stacks.py (Django's own handler and middleware,
either opt-in alone, both), one after the other, pinned as bench/relay.py
pins it and in front of the same fake upstream.

Figures per stack: time to first token at 1 stream (added over the direct
baseline), CPU per 2-token answer (an answer's fixed part, where a
per-request thread and hand-offs show), and CPU per 1,000 tokens at 100
streams; each also as a ratio to the stock stack's.

    python -m bench.stacks [--quick] [--no-pin]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from harness.stacks import STACKS

from . import procs, report
from .rig import FIRST_TOKEN_DELAY, PACE, TTFT_TOKENS, Rig

# rounds: the stacks are measured in turn this many times (stock, middleware,
# handler, fast, stock, ...), and each figure is the median of its rounds.
SIZES = {
    "full": {"tokens": 100, "window_streams": 2, "ttft_samples": 60, "streams": 100, "rounds": 2},
    "quick": {"tokens": 50, "window_streams": 1, "ttft_samples": 30, "streams": 100, "rounds": 1},
}
LABELS = {
    "stock": "Django's handler and middleware (stock)",
    "middleware": "stock handler + conversations.middleware",
    "handler": "conversations.asgi handler + stock middleware",
    "fast": "both opt-ins (chatstream's project)",
}


def measure(stack: str, size: dict, layout: dict, work_dir: Path) -> dict:
    work_dir.mkdir()
    with Rig(size, layout, work_dir, app_stack=stack) as rig:
        rig.warm_up()
        one = rig.sequential("relay", size["ttft_samples"])
        direct_one = rig.sequential("direct", size["ttft_samples"])
        many = rig.steady("relay", size["streams"])
    return {
        "ttft_p50_ms": one["ttft_ms"]["p50"],
        "ttft_added_ms": _minus(one["ttft_ms"]["p50"], direct_one["ttft_ms"]["p50"]),
        "cpu_ms_per_answer": one["app_cpu_s"] / one["streams"] * 1000 if one["streams"] else None,
        "cpu_s_per_1k_tokens": many["app_cpu_s_per_1k_tokens"],
        "gap_p99_ms": many["gap_ms"]["p99"],
        "errors": [*one["errors"], *many["errors"]],
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def run(*, quick: bool = False, pin: bool = True) -> dict:
    size = dict(SIZES["quick" if quick else "full"], first_token_delay=FIRST_TOKEN_DELAY, pace=PACE)
    layout = procs.cpu_layout(pin)
    rounds: dict[str, list[dict]] = {stack: [] for stack in STACKS}
    with tempfile.TemporaryDirectory(prefix="bench-stacks-") as tmp:
        for number in range(size["rounds"]):
            for stack in STACKS:
                rounds[stack].append(measure(stack, size, layout, Path(tmp) / f"{stack}-{number}"))
    stacks = {stack: _medians(measured) for stack, measured in rounds.items()}
    return {"size": size, "layout": procs.describe_layout(layout), "stacks": stacks, "rounds": rounds}


def _medians(rounds: list[dict]) -> dict:
    figures = {
        key: statistics.median(values) if (values := [r[key] for r in rounds if r[key] is not None]) else None
        for key in rounds[0]
        if key != "errors"
    }
    return figures | {"errors": [error for r in rounds for error in r["errors"]]}


def print_results(results: dict) -> None:
    size, stacks = results["size"], results["stacks"]
    stock = stacks["stock"]
    print(
        f"\n== The app under uvicorn on each stack: TTFT and CPU per {TTFT_TOKENS}-token answer over "
        f"{size['ttft_samples']} sequential streams, CPU per 1k tokens at {size['streams']} streams of "
        f"{size['tokens']}-token answers ({results['layout']}); medians of {size['rounds']} round(s) taken in turn; "
        "ratios to the stock stack"
    )
    headers = ["stack", "TTFT p50 ms (added)", "CPU ms / answer", "vs stock", "CPU s / 1k tokens", "vs stock", "errors"]
    rows = []
    for stack, figures in stacks.items():
        rows.append(
            [
                LABELS[stack],
                f"{report.fmt(figures['ttft_p50_ms'], 2)} (+{report.fmt(figures['ttft_added_ms'], 2)})",
                report.fmt(figures["cpu_ms_per_answer"], 2),
                _ratio(figures["cpu_ms_per_answer"], stock["cpu_ms_per_answer"]),
                report.fmt(figures["cpu_s_per_1k_tokens"], 4),
                _ratio(figures["cpu_s_per_1k_tokens"], stock["cpu_s_per_1k_tokens"]),
                str(len(figures["errors"])),
            ]
        )
    print(report.table(headers, rows))


def _ratio(value: float | None, base: float | None) -> str:
    return "—" if value is None or not base else f"{value / base:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stacks", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    results = run(quick=args.quick, pin=args.pin)
    print_results(results)
    print(f"\nresults: {report.save({'stacks': results}, 'bench-stacks')}")


if __name__ == "__main__":
    main()
