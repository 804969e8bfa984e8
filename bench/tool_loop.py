"""What the tool loop itself costs: the time from the last chunk of a model
call that asked for a tool to the next model request, less the tool's own
time, at 1 and at 50 answers at once. In between, the app reads the end of
the call, records the call (a ToolRun row), runs the tool, records its
result, saves the step (an AnswerStep row), asks the budgets and sends the
next request. The target: under 5 ms at p50.

Both times are the fake upstream's (--tool-loop: it calls the first tool
offered, then answers in text once it has the result); the tool's own time
is the one its `tool_result` reports, which holds the hop to its thread and
back. The app runs under uvicorn on CPU 0 as bench/relay.py runs it, with
SQLite, and a tool that returns at once; the model's pace is the relay
benchmark's (first token after 50 ms, then one every 20 ms).

    python -m bench.tool_loop [--quick] [--no-pin]
"""

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

import httpx

from harness import fake_upstream

from . import procs, report
from .rig import FIRST_TOKEN_DELAY, PACE, app_env, app_server, prepare_database
from .stats import summary

SIZES = {
    "full": {"concurrency": (1, 50), "answers": 200, "tokens": 20},
    "quick": {"concurrency": (1, 50), "answers": 50, "tokens": 5},
}
STAGGER_S = 1.0  # about one answer's length
TARGET_P50_MS = 5.0


async def answer(client: httpx.AsyncClient) -> tuple[str, int]:
    """One message's answer, read to its end: its tool call's id, and the
    tool's time in ms as chatstream measured it (its `tool_result`)."""
    conversation = (await client.post("/api/conversations", json={})).json()["id"]
    result = {"id": "", "duration_ms": 0}
    body = {"content": "Use the tool."}
    async with client.stream("POST", f"/api/conversations/{conversation}/messages", json=body) as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "tool_result":
                result = json.loads(line[5:])
    return result["id"], result["duration_ms"]


async def answers_at_once(base_url: str, key: str, concurrency: int, total: int) -> dict[str, int]:
    """`total` answers, `concurrency` at a time, the first ones' starts spread
    over STAGGER_S so that arrivals are steady (as bench/rig.py's rounds do):
    each tool call's time, by its id."""
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 5)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60, limits=limits) as client:

        async def one(number: int) -> tuple[str, int]:
            if number < concurrency:
                await asyncio.sleep(STAGGER_S * number / concurrency)
            async with slots:
                return await answer(client)

        return dict(await asyncio.gather(*(one(number) for number in range(total))))


def loop_times(calls: list[dict], tool_ms: dict[str, int]) -> list[float]:
    """ms from the last chunk of each call that asked for a tool to the
    request that carried the tool's result (the two calls name one call id),
    less that tool's own time."""
    by_tool_call: dict[str, list[dict]] = {}
    for call in sorted(calls, key=lambda c: c["started_at"]):
        if call["tool_call"] in tool_ms:
            by_tool_call.setdefault(call["tool_call"], []).append(call)
    return [
        (carried["started_at"] - asked["finished_at"]) * 1000 - tool_ms[call_id]
        for call_id, (asked, carried, *_) in ((k, pair) for k, pair in by_tool_call.items() if len(pair) >= 2)
        if asked["finished_at"]
    ]


def upstream_calls(port: int) -> list[dict]:
    return httpx.get(f"http://{procs.HOST}:{port}/calls", timeout=10).json()


def measure(size: dict, layout: dict, work_dir: Path) -> dict:
    harness = layout["harness"]
    timing = {"first_token_delay": FIRST_TOKEN_DELAY, "pace": PACE, "tokens": size["tokens"]}
    upstream = fake_upstream.service(
        procs.free_port(), log_dir=work_dir, cpus=harness, record_calls=True, tool_loop=True, **timing
    )
    with upstream:
        env = {**app_env(work_dir, upstream.port), "CHATSTREAM_TOOLS": "bench.tools.instant"}
        key = prepare_database(env)
        port = procs.free_port()
        with app_server("uvicorn", port, env, log_dir=work_dir, cpus=layout["measured"]):
            base_url = f"http://{procs.HOST}:{port}"
            asyncio.run(answers_at_once(base_url, key, 5, 10))  # imports, pools, caches
            results = {}
            for concurrency in size["concurrency"]:
                total = max(size["answers"] // 4, 20) if concurrency == 1 else size["answers"]
                tool_ms = asyncio.run(answers_at_once(base_url, key, concurrency, total))
                calls = upstream_calls(upstream.port)[-2 * total :]  # the newest: this round's
                results[concurrency] = {
                    "answers": total,
                    "loop_ms": summary(loop_times(calls, tool_ms)),
                    "tool_ms": summary(list(tool_ms.values())),
                }
    return results


def run(*, quick: bool = False, pin: bool = True) -> dict:
    size = SIZES["quick" if quick else "full"]
    layout = procs.cpu_layout(pin)
    if layout["harness"]:
        os.sched_setaffinity(0, layout["harness"])  # the load client, beside the upstream
    with tempfile.TemporaryDirectory(prefix="bench-tool-loop-") as tmp:
        figures = measure(size, layout, Path(tmp))
    return {"size": size, "layout": procs.describe_layout(layout), "levels": figures, "target_p50_ms": TARGET_P50_MS}


def print_results(results: dict) -> None:
    print(
        f"\n== The tool loop's own time: from a call's last chunk to the next model request, less the tool's "
        f"({results['layout']}; target under {results['target_p50_ms']:g} ms at p50)"
    )
    rows = []
    for concurrency, level in results["levels"].items():
        loop = level["loop_ms"]
        rows.append(
            [
                str(concurrency),
                str(level["answers"]),
                report.fmt(loop["p50"], 2),
                report.fmt(loop["p99"], 2),
                report.fmt(loop["max"], 2),
                f"{report.fmt(level['tool_ms']['p50'], 0)} / {report.fmt(level['tool_ms']['p99'], 0)}",
                "yes" if loop["p50"] is not None and loop["p50"] < results["target_p50_ms"] else "NO",
            ]
        )
    headers = ["answers at once", "answers", "p50 ms", "p99 ms", "max ms", "the tool's p50 / p99 ms", "under target"]
    print(report.table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tool_loop", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    results = run(quick=args.quick, pin=args.pin)
    print_results(results)
    print(f"\nresults: {report.save({'tool_loop': results}, 'bench-tool-loop')}")


if __name__ == "__main__":
    main()
