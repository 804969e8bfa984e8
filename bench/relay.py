"""The relay end to end: fake upstream -> app under uvicorn -> load client.

Every relay round has a baseline round: the same client, at the same
concurrency, reading the fake upstream directly (see bench/rig.py for the
processes). Figures: added time to first token at 1 and 100 streams, the
app's CPU, memory and threads per stream, and a concurrency ramp.

Two peers are measured the same way in the same run, a plain Django relay
(bench/plain_relay.py) and a FastAPI relay (bench/fastapi_relay.py), since
the machine's speed varies from day to day: the targets (bench/targets.py)
are ratios to them. Then 10 streams of a fast model (1,000 tokens a second),
from a rig of their own.

    python -m bench.relay [--quick] [--no-pin]
"""

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from . import procs, report, targets
from .rig import FIRST_TOKEN_DELAY, PACE, PEERS, TTFT_TOKENS, Rig
from .stats import largest

GAP_FACTOR = 2.0  # the ramp's bar: relay p99 gap <= 2x the direct p99 gap
DELAY_FACTOR = 2.0  # ... and p99 delay from the upstream's send to the client's receipt < 2x its pace
# ... and the streams must really be streaming at once: an app that queues
# requests before their first token would otherwise pass with small gaps.
STREAMING_FLOOR = 0.9  # relay's mean streaming streams >= 0.9x the direct run's

# tokens: per answer. window_streams: the steady-state window, in stream lengths.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "tokens": 200,
        "window_streams": 1,
        "ttft_samples": 30,
        "main_streams": 100,
        "ramp": [50, 100, 200, 300, 400, 500, 700, 1000],
        "ramp_budget_s": 180,
        # The peers are expected to fail at 50-200 streams.
        "plain_ramp": [25, 50, 100, 200, 300, 400],
        "plain_ramp_budget_s": 60,
    },
    "quick": {
        "tokens": 50,
        "window_streams": 1,
        "ttft_samples": 15,
        "main_streams": 100,
        "ramp": [50, 100, 400],
        "ramp_budget_s": 25,
        "plain_ramp": [25, 50, 100, 200],
        "plain_ramp_budget_s": 15,
    },
}
FEW_STREAMS = 10  # time to first token under some load
RSS_STREAMS = 50  # the process's resident size with this many open
# A fast model: 1,000 tokens a second per stream, 10 streams.
FAST_MODEL = {"streams": 10, "tokens": 1000, "pace": 0.001, "window_streams": 2}


def _level(rig: Rig, streams: int, *, kind: str = "relay", direct: dict | None = None) -> dict:
    """One concurrency level: direct first (the upstream's memory is then
    measured growing from idle), unless a direct round of this level is
    given, then the relay: the app, or with kind="plain" the plain relay
    (under the "relay" key all the same). `passed` is the target's bar (p99
    gap); `strict` also asks that the streams really ran at once."""
    direct = direct if direct is not None else rig.steady("direct", streams)
    relay = rig.steady(kind, streams)
    ratio = None
    if relay["gap_ms"]["p99"] is not None and direct["gap_ms"]["p99"]:
        ratio = relay["gap_ms"]["p99"] / direct["gap_ms"]["p99"]
    streaming = relay["streaming"] / direct["streaming"] if direct["streaming"] else None
    problems = [*relay["errors"], *direct["errors"]]
    if ratio is None or ratio > GAP_FACTOR:
        problems.append(f"p99 gap {report.fmt(ratio, 2, 'x')} direct's")
    delay, pace_ms = relay["delay_ms"]["p99"], rig.size["pace"] * 1000
    if delay is not None and delay >= DELAY_FACTOR * pace_ms:
        problems.append(f"p99 send-to-receipt delay {delay:.1f} ms")
    passed = not problems
    if streaming is None or streaming < STREAMING_FLOOR:
        problems.append(f"only {report.fmt(streaming and streaming * 100, 0, '%')} as many streaming as direct")
    return {
        "streams": streams,
        "kind": kind,
        "direct": direct,
        "relay": relay,
        "gap_ratio": ratio,
        "streaming_ratio": streaming,
        "problems": problems,
        "passed": passed,
        "strict": not problems,
    }


def ramp(rig: Rig, main: dict) -> tuple[list[dict], str]:
    """Climb the levels (the main one is already measured) while the p99 gap
    bar holds and the time budget lasts; then, if either bar has no passing
    level yet, halve down below the lowest. Returns the levels run, in order
    of size, and why the climb stopped."""
    levels, stopped = {main["streams"]: main}, "every level passed"
    deadline = time.monotonic() + rig.size["ramp_budget_s"]
    climb = sorted({*rig.size["ramp"], main["streams"]})
    for streams in climb:
        if streams not in levels:
            if time.monotonic() > deadline:
                stopped = f"time budget of {rig.size['ramp_budget_s']} s spent"
                break
            levels[streams] = _level(rig, streams)
        if not levels[streams]["passed"]:
            stopped = f"{streams} streams failed: {'; '.join(levels[streams]['problems'])}"
            break
    streams = climb[0] // 2
    while streams >= 10 and None in (largest([*levels.values()], "passed"), largest([*levels.values()], "strict")):
        levels[streams] = _level(rig, streams)
        streams //= 2
    return [levels[n] for n in sorted(levels)], stopped


def plain_ramp(rig: Rig, main: dict, directs: dict[int, dict], kind: str = "plain") -> tuple[list[dict], str]:
    """A peer's levels by the same bars, from its main level: down
    the ladder while the lowest level run fails either bar, then up while
    every level run passes the gap bar (else `largest` would not count a
    higher one), within the time budget. `directs` are the direct rounds
    already run, by level: each round costs seconds."""
    levels = {main["streams"]: main}
    deadline = time.monotonic() + rig.size["plain_ramp_budget_s"]
    ladder = sorted(rig.size["plain_ramp"])
    down = [n for n in reversed(ladder) if n < main["streams"]]
    up = [n for n in ladder if n > main["streams"]]

    def needed(streams: int) -> bool:
        if streams < min(levels):
            return not levels[min(levels)]["strict"]
        return all(level["passed"] for level in levels.values())

    stopped = "every level the bars asked for ran"
    for streams in [*down, *up]:
        if not needed(streams):
            continue
        if time.monotonic() > deadline:
            stopped = f"time budget of {rig.size['plain_ramp_budget_s']} s spent"
            break
        levels[streams] = _level(rig, streams, kind=kind, direct=directs.get(streams))
    return [levels[n] for n in sorted(levels)], stopped


def _figure(figure: str, relay, baseline, *, unit: str, digits: int, mode: str, target: str = "", met=None) -> dict:
    """One table row; `mode` is "added" (relay - baseline) or "ratio"."""
    delta = None
    if relay is not None and baseline is not None and mode == "added":
        delta = f"+{relay - baseline:.{digits}f} {unit}"
    elif relay is not None and baseline:
        delta = f"{relay / baseline:.2f}x"
    return {
        "figure": figure,
        "relay": report.fmt(relay, digits),
        "baseline": report.fmt(baseline, digits),
        "delta": delta or "—",
        "target": target,
        "met": met,
        "values": {"relay": relay, "baseline": baseline},
    }


def _ttft_figures(label: str, relay: dict, direct: dict, target_p50: float | None = None) -> list[dict]:
    rows = []
    for q in ("p50", "p99"):
        r, d = relay["ttft_ms"][q], direct["ttft_ms"][q]
        target, met = "", None
        if q == "p50" and target_p50 is not None:
            target, met = f"added <= {target_p50:g} ms", (r - d <= target_p50 if None not in (r, d) else False)
        rows.append(_figure(f"TTFT {q} ms, {label}", r, d, unit="ms", digits=2, mode="added", target=target, met=met))
    return rows


def _per_stream_kib(record: dict, who: str) -> float:
    """Peak RSS growth over the open streams (one per worker)."""
    return (record[f"{who}_rss_peak"] - record[f"{who}_rss_idle"]) / record["workers"] / 1024


def _fixed_s(short: dict, who: str) -> float:
    """CPU s per answer of a round of 2-token answers: an answer's fixed part."""
    return short[f"{who}_cpu_s"] / short["streams"]


def _answer_cost_figures(n: int, relay: dict, short: dict, base: dict, short_base: dict, who: str, vs: str) -> list:
    """Per token beyond the fixed part, the fixed part, and memory per open
    stream: the app (`relay`, `short`) against a baseline whose process is
    `who` in its rounds; `vs` names the baseline in the labels."""
    return [
        _figure(
            f"  same, each answer's fixed part taken out{vs}",
            per_token_beyond_fixed(relay, short, "app"),
            per_token_beyond_fixed(base, short_base, who),
            unit="s",
            digits=4,
            mode="ratio",
        ),
        # Two tokens are next to nothing: this is the cost of an answer as such.
        _figure(
            f"CPU ms per {TTFT_TOKENS}-token answer @1 stream{vs}",
            _fixed_s(short, "app") * 1000,
            _fixed_s(short_base, who) * 1000,
            unit="ms",
            digits=2,
            mode="ratio",
        ),
        _figure(
            f"RSS KiB / open stream @{n}{vs}",
            _per_stream_kib(relay, "app"),
            _per_stream_kib(base, who),
            unit="KiB",
            digits=1,
            mode="ratio",
        ),
    ]


def per_token_beyond_fixed(round_: dict, short: dict, who: str) -> float | None:
    """CPU s per 1k tokens once each answer's fixed part (its CPU per
    2-token answer at 1 stream) is taken out: what the hot path costs per
    token, whatever the answers' length."""
    beyond = round_[f"{who}_cpu_s"] - round_["streams"] * _fixed_s(short, who)
    return beyond / round_["tokens"] * 1000 if round_["tokens"] else None


def _cost_figures(ttft1: dict, main: dict, tokens: int) -> list[dict]:
    relay, direct, n = main["relay"], main["direct"], main["streams"]
    cpu = relay["app_cpu_s_per_1k_tokens"]
    short, short_direct = ttft1["relay"], ttft1["direct"]
    return [
        _figure(
            f"CPU s / 1k tokens @{n}, {tokens}-token answers (app; baseline: fake upstream)",
            cpu,
            direct["upstream_cpu_s_per_1k_tokens"],
            unit="s",
            digits=4,
            mode="ratio",
        ),
        *_answer_cost_figures(n, relay, short, direct, short_direct, "upstream", " (app; baseline: fake upstream)"),
        _figure(
            f"OS threads, peak @{n} (app; baseline: fake upstream)",
            relay["app_threads_peak"],
            direct["upstream_threads_peak"],
            unit="",
            digits=0,
            mode="ratio",
        ),
    ]


def _ramp_figures(levels: list[dict]) -> list[dict]:
    rows = []
    for key, label, target in (
        ("passed", f"max streams, relay p99 gap <= {GAP_FACTOR:g}x direct", ""),
        ("strict", f"  same, and >= {STREAMING_FLOOR:.0%} as many streaming as direct", ""),
    ):
        best = largest(levels, key)
        at_best = next((lv for lv in levels if lv["streams"] == best), None)
        rows.append(
            {
                "figure": label,
                "relay": report.fmt(best),
                "baseline": f"p99 gap {report.fmt(at_best['direct']['gap_ms']['p99'], 1)} ms" if at_best else "—",
                "delta": f"relay p99 gap {report.fmt(at_best['relay']['gap_ms']['p99'], 1)} ms" if at_best else "—",
                "target": target,
                "met": (best is not None and best >= 400) if target else None,
                "values": {"relay": best},
            }
        )
    return rows


def _gap_and_cancel_figures(main: dict, cancel: dict) -> list[dict]:
    relay, direct, n = main["relay"], main["direct"], main["streams"]
    rows = [
        _figure(
            f"gap between tokens p99 ms @{n}",
            relay["gap_ms"]["p99"],
            direct["gap_ms"]["p99"],
            unit="ms",
            digits=2,
            mode="added",
        )
    ]
    for q in ("p50", "p99"):
        r, d = cancel["relay"][q], cancel["direct"][q]
        met = r < 200 if q == "p99" and r is not None else None
        rows.append(
            _figure(
                f"cancel: client abort -> upstream request closed, {q} ms",
                r,
                d,
                unit="ms",
                digits=2,
                mode="added",
                target="< 200" if q == "p99" else "",
                met=met,
            )
        )
    return rows


def _plain_cost_figures(ttft1: dict, main: dict, plain: dict) -> list[dict]:
    """The app's cost against the plain relay's, both at the main level."""
    relay, n = main["relay"], main["streams"]
    cpu, plain_cpu = relay["app_cpu_s_per_1k_tokens"], plain["app_cpu_s_per_1k_tokens"]
    short, short_plain = ttft1["relay"], ttft1["plain"]
    return [
        _figure(
            f"CPU s / 1k tokens @{n}: relay vs plain Django relay",
            cpu,
            plain_cpu,
            unit="s",
            digits=4,
            mode="ratio",
        ),
        *_answer_cost_figures(n, relay, short, plain, short_plain, "app", ": relay vs plain"),
        _figure(
            "TTFT p50 ms, 1 stream: relay vs plain",
            short["ttft_ms"]["p50"],
            short_plain["ttft_ms"]["p50"],
            unit="ms",
            digits=2,
            mode="added",
        ),
    ]


def _plain_ramp_figures(levels: list[dict], plain_levels: list[dict]) -> list[dict]:
    """Streams held by the same bars, the app's over the plain relay's."""
    labels = {
        "passed": f"streams held, p99 gap <= {GAP_FACTOR:g}x direct: relay vs plain",
        "strict": f"  same, and >= {STREAMING_FLOOR:.0%} as many streaming as direct",
    }
    return [
        _figure(label, largest(levels, key), largest(plain_levels, key), unit="", digits=0, mode="ratio")
        for key, label in labels.items()
    ]


def figures(
    ttft1: dict, main: dict, levels: list[dict], tokens: int, cancel: dict, plain_levels: list[dict]
) -> list[dict]:
    """The summary table's rows, each with its baseline from this run: the
    direct run, then the plain relay."""
    relay, direct, n = main["relay"], main["direct"], main["streams"]
    plain = next(level["relay"] for level in plain_levels if level["streams"] == n)
    client = _figure(
        f"load client CPU s / 1k tokens @{n} (relay vs direct run)",
        relay["client_cpu_s_per_1k_tokens"],
        direct["client_cpu_s_per_1k_tokens"],
        unit="s",
        digits=4,
        mode="ratio",
    )
    return [
        *_ttft_figures("1 stream", ttft1["relay"], ttft1["direct"]),
        *_ttft_figures(f"{n} streams", relay, direct),
        *_gap_and_cancel_figures(main, cancel),
        *_cost_figures(ttft1, main, tokens),
        *_ramp_figures(levels),
        client,
        *_plain_cost_figures(ttft1, main, plain),
        *_plain_ramp_figures(levels, plain_levels),
    ]


def run(*, quick: bool = False, pin: bool = True, tokens: int | None = None, server: str = "uvicorn") -> dict:
    size = SIZES["quick" if quick else "full"] | {"first_token_delay": FIRST_TOKEN_DELAY, "pace": PACE, "stamp": True}
    if tokens is not None:
        size["tokens"] = tokens  # longer answers: each ramp level takes longer, so fewer fit the budget
    layout = procs.cpu_layout(pin)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp, Rig(size, layout, Path(tmp), server) as rig:
        rig.warm_up()
        # First, while the processes' RSS is still that of the warm-up:
        # RSS hardly ever shrinks, so after the ramp it would say 700 streams.
        at_rss = _with_peers(rig, RSS_STREAMS, rig.steady("direct", RSS_STREAMS), ("fastapi",))
        samples = size["ttft_samples"]
        ttft1 = {kind: rig.sequential(kind, samples) for kind in ("relay", *PEERS, "direct")}
        cancel = rig.cancel_propagation(samples)
        few = _with_peers(rig, FEW_STREAMS, rig.steady("direct", FEW_STREAMS))
        main = _level(rig, size["main_streams"])
        levels, stopped = ramp(rig, main)
        directs = {level["streams"]: level["direct"] for level in levels}
        peers = {kind: _peer_ramp(rig, kind, main, directs) for kind in PEERS}
        floor = _level(rig, main["streams"], kind="floor", direct=main["direct"])
    fast = None if quick else fast_model(layout, server)
    results = {
        "server": server,
        "size": size,
        "cancel": cancel,
        "layout": procs.describe_layout(layout),
        "ttft_1_stream": ttft1,
        "figures": figures(ttft1, main, levels, size["tokens"], cancel, peers["plain"]["ramp"]),
        "ramp": levels,
        "ramp_stopped": stopped,
        "plain_ramp": peers["plain"]["ramp"],
        "plain_ramp_stopped": peers["plain"]["stopped"],
        "fastapi_ramp": peers["fastapi"]["ramp"],
        "fastapi_ramp_stopped": peers["fastapi"]["stopped"],
        "floor": floor,
        "few_streams": few,
        "rss_levels": at_rss,
        "fast_model": fast,
        "notes": _notes(size, stopped, peers["plain"]["stopped"]),
        "seconds": time.perf_counter() - started,
    }
    results["targets"] = targets.rows(results)
    return results


def _with_peers(rig: Rig, streams: int, direct: dict, peers: tuple[str, ...] = (*PEERS, "floor")) -> dict[str, dict]:
    """One level for the app and each of `peers`, against one direct round."""
    return {kind: _level(rig, streams, kind=kind, direct=direct) for kind in ("relay", *peers)}


def _peer_ramp(rig: Rig, kind: str, main: dict, directs: dict[int, dict]) -> dict:
    peer_main = _level(rig, main["streams"], kind=kind, direct=main["direct"])
    levels, stopped = plain_ramp(rig, peer_main, directs, kind)
    return {"ramp": levels, "stopped": stopped}


def fast_model(layout: dict, server: str) -> dict:
    """10 streams of a model that sends 1,000 tokens a second: the app, each
    peer and the direct client, from a rig of their own."""
    size = FAST_MODEL | {"first_token_delay": FIRST_TOKEN_DELAY, "stamp": True, "ttft_samples": 5}
    with tempfile.TemporaryDirectory(prefix="bench-fast-") as tmp, Rig(size, layout, Path(tmp), server) as rig:
        rig.warm_up()
        return {"size": size} | _with_peers(rig, size["streams"], rig.steady("direct", size["streams"]))


def _notes(size: dict, stopped: str, plain_stopped: str) -> list[str]:
    return [
        f"ramp stopped: {stopped}.",
        f"plain ramp: from {size['main_streams']} streams down {size['plain_ramp']} while the lowest level fails "
        f"either bar, then up while every level passes the gap bar; {plain_stopped}. Direct rounds are reused from "
        "the app's ramp at the same level. Streams held stop at each ladder's top, so a relay that passed its top "
        "level holds at least that many.",
        "streaming: mean number of streams between their first and last token during the window. The strict bar "
        "asks for it because a server that queues requests before their first token keeps its gaps small.",
        "N streams = N client workers in closed loops (a new stream as soon as one ends), starts staggered over "
        f"one stream's length; TTFT and gaps come from the following {size['window_streams']} stream length(s).",
        "TTFT: from the client's connect() to the first token event; 'added' is relay minus direct at that "
        f"percentile. With {size['ttft_samples']} samples at 1 stream, p99 is about the slowest one.",
        f"TTFT at 1 stream: {size['ttft_samples']} sequential streams through a second app whose upstream "
        f"sends {TTFT_TOKENS} tokens, so they take seconds, not minutes.",
        "CPU: utime+stime from /proc over the whole round, per token relayed; it includes each answer's POST, "
        "auth, turn writes and connections; the 2-token answers at 1 stream show that fixed part alone.",
        "RSS per stream: peak RSS during the round minus RSS just before it, over the streams open at once.",
        "Conversations are created before each relay round (one per worker, which then posts several messages "
        "to it); the timed part is the message POST and its stream.",
        "plain Django relay (bench/plain_relay.py): one async view, a shared httpx client with httpx-sse, a "
        "StreamingHttpResponse, CommonMiddleware only; no auth, no database, nothing saved: the most favourable "
        "plain relay, so the ratios to it are conservative. It runs under the same server, on the same CPU and "
        "behind the same upstream as the app. The FastAPI relay (bench/fastapi_relay.py: sse-starlette, httpx, "
        "httpx-sse) is measured the same way; the targets table (bench/targets.py) compares the app with it.",
        "tokens are stamped by the fake upstream with their send time (CLOCK_MONOTONIC); the client's receipt "
        "minus the stamp is the send-to-receipt delay, the ramp's second bar (p99 < 2x the pace).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about 70 s")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    parser.add_argument("--tokens", type=int, help="tokens per answer (default 200; --quick 50)")
    args = parser.parse_args()
    results = run(quick=args.quick, pin=args.pin, tokens=args.tokens)
    report.print_relay(results)
    print(f"results: {report.save({'relay': results}, 'relay')}")


if __name__ == "__main__":
    main()
