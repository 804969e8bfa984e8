"""Printing the tables and saving the JSON under bench/results/."""

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = (
    "django",
    "uvicorn",
    "uvloop",
    "httptools",
    "httpx",
    "httpx-sse",
    "openai",
    "orjson",
    "aiohttp",
    "fastapi",
    "sse-starlette",
)


def fmt(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def environment() -> dict:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "packages": versions,
    }


def save(results: dict, name: str) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    payload = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(), **results}
    path.write_text(json.dumps(payload, indent=2))
    return path


# --- clients -----------------------------------------------------------------


def print_clients(results: dict) -> None:
    size = results["size"]
    print(
        f"\n== Upstream client CPU: {size['streams']} concurrent streams x {size['tokens']} tokens "
        f"from the fake upstream, best of {size['repeats']} ({results['layout']})"
    )
    rows = [
        [
            row["label"],
            fmt(row["cpu_s_per_1k_tokens"], 4),
            fmt(row["ratio_to_cheapest"], 2, "x"),
            ", ".join(fmt(v, 4) for v in row["all_cpu_s_per_1k_tokens"]),
            fmt(row["tokens"]),
            fmt(row["wall_s"], 1),
            "; ".join(row["errors"]) or "",
        ]
        for row in sorted(results["rows"], key=lambda r: r["cpu_s_per_1k_tokens"] or float("inf"))
    ]
    headers = ["client", "CPU s / 1k tokens", "vs cheapest candidate", "every run", "tokens", "wall s", "errors"]
    print(table(headers, rows))
    for name, why in results["skipped"].items():
        print(f"skipped {name}: {why}")


# --- relay -------------------------------------------------------------------


def print_relay(results: dict) -> None:
    size = results["size"]
    print(
        f"\n== Relay end to end: fake upstream (first token {size['first_token_delay'] * 1000:g} ms, "
        f"then one every {size['pace'] * 1000:g} ms, {size['tokens']} tokens) -> app under {results['server']} -> "
        f"lean load client; baseline: the same client reading the fake upstream directly, and at the end of the "
        f"table a plain Django relay; the targets against the FastAPI relay follow ({results['layout']})"
    )
    headers = ["figure", "relay", "baseline", "ratio / added", "target", "met"]
    rows = [
        [
            f["figure"],
            f["relay"],
            f["baseline"],
            f["delta"],
            f["target"],
            {True: "yes", False: "NO", None: ""}[f["met"]],
        ]
        for f in results["figures"]
    ]
    print(table(headers, rows))
    print(
        "\nConcurrency ramp (steady state; streaming: mean streams between first and last token in the window; "
        "head: time to the response head; CPU in % of one core):"
    )
    print(ramp_table(results["ramp"]))
    for kind, name in (("plain", "Plain Django relay"), ("fastapi", "FastAPI relay")):
        if f"{kind}_ramp" in results:  # older results have none
            print(f"\n{name}, the same bars (direct rounds shared with the ramp above at the same level):")
            print(ramp_table(results[f"{kind}_ramp"], who=kind))
    for note in results["notes"]:
        print(f"- {note}")
    if "targets" in results:
        print_targets(results["targets"], results["server"])


def print_targets(rows: list[dict], server: str) -> None:
    print(f"\n== Targets under {server}: the app against its peers, measured in this run")
    headers = ["figure", "chatstream", "peer", "ratio", "target", "met"]
    body = [
        [r["figure"], r["app"], r["peer"], r["ratio"], r["target"], {True: "yes", False: "NO", None: ""}[r["met"]]]
        for r in rows
    ]
    print(table(headers, body))


def ramp_table(levels: list[dict], who: str = "relay") -> str:
    """One row per level; `who` names the relay measured (a level holds it
    under "relay" whether it is the app or the plain relay)."""
    headers = [
        "streams",
        f"p99 gap ms {who}/direct",
        "ratio",
        f"streaming {who}/direct",
        f"TTFT p50/p99 ms {who}",
        "TTFT p50/p99 ms direct",
        f"head p50 ms {who}",
        f"CPU {'app' if who == 'relay' else who}/upstream/client",
        "ok",
        "verdict",
    ]
    rows = []
    for level in levels:
        relay, direct = level["relay"], level["direct"]
        cpu = [relay["app_cpu_pct"], relay["upstream_cpu_pct"], relay["client_cpu_pct"]]
        rows.append(
            [
                str(level["streams"]),
                f"{fmt(relay['gap_ms']['p99'], 1)} / {fmt(direct['gap_ms']['p99'], 1)}",
                fmt(level["gap_ratio"], 2, "x"),
                f"{fmt(relay['streaming'], 0)} / {fmt(direct['streaming'], 0)}",
                f"{fmt(relay['ttft_ms']['p50'], 1)} / {fmt(relay['ttft_ms']['p99'], 1)}",
                f"{fmt(direct['ttft_ms']['p50'], 1)} / {fmt(direct['ttft_ms']['p99'], 1)}",
                fmt(relay["head_ms"]["p50"], 1),
                " / ".join(fmt(c, 0, "%") for c in cpu),
                f"{relay['ok']}/{relay['streams']}",
                "pass" if level["strict"] else ("gap only" if level["passed"] else "FAIL"),
            ]
        )
    return table(headers, rows)
