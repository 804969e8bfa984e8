"""The relay's targets, each a ratio to a peer measured in the same run.

This machine's speed moves from day to day, so no target is an absolute
figure: each compares the app with the FastAPI relay (bench/fastapi_relay.py,
the stack most teams would reach for first) or the plain Django relay, under
the same server, on the same core, behind the same upstream, minutes apart.
"""

from . import report
from .stats import largest

CPU_RATIO = 0.4  # CPU per 1,000 tokens at 100 streams, over FastAPI's
STREAMS_RATIO = 4  # streams held, over FastAPI's
FAST_CPU_RATIO = 0.25  # CPU per 1,000 tokens of a fast model, over FastAPI's
FAST_EVENTS_PER_SECOND = 66  # "about 60" a stream: a frame's timer may fire a little early
RSS_PER_STREAM_KIB = 32
RSS_RATIO = 1.3  # the process's resident size with 50 streams open, over FastAPI's


def _row(figure: str, app, peer, *, peer_name: str, target: str, met: bool | None, digits: int = 2) -> dict:
    return {
        "figure": figure,
        "app": report.fmt(app, digits),
        "peer": f"{report.fmt(peer, digits)} ({peer_name})" if peer is not None else "—",
        "ratio": f"{app / peer:.2f}x" if app is not None and peer else "—",
        "target": target,
        "met": met,
        "values": {"app": app, "peer": peer},
    }


def _ratio_at_most(app, peer, ratio: float) -> bool | None:
    return None if app is None or not peer else app <= ratio * peer


def _ttft_added(level: dict) -> float | None:
    relay, direct = level["relay"]["ttft_ms"]["p50"], level["direct"]["ttft_ms"]["p50"]
    return None if None in (relay, direct) else relay - direct


def _cpu(level: dict) -> float | None:
    return level["relay"]["app_cpu_s_per_1k_tokens"]


def _rss_kib(level: dict) -> float:
    return level["relay"]["app_rss_peak"] / 1024


def _per_stream_kib(level: dict) -> float:
    relay = level["relay"]
    return (relay["app_rss_peak"] - relay["app_rss_idle"]) / level["streams"] / 1024


def rows(results: dict) -> list[dict]:
    main = next(lv for lv in results["ramp"] if lv["streams"] == results["size"]["main_streams"])
    fastapi_main = next(lv for lv in results["fastapi_ramp"] if lv["streams"] == main["streams"])
    few, ttft1 = results["few_streams"], results["ttft_1_stream"]
    n = main["streams"]
    out = [
        _row(
            f"CPU s per 1k tokens @{n} streams",
            _cpu(main),
            _cpu(fastapi_main),
            peer_name="FastAPI",
            target=f"<= {CPU_RATIO}x FastAPI",
            met=_ratio_at_most(_cpu(main), _cpu(fastapi_main), CPU_RATIO),
            digits=4,
        ),
        _floor_row(results.get("floor"), fastapi_main),
    ]
    held, peer_held = largest(results["ramp"], "passed"), largest(results["fastapi_ramp"], "passed")
    out.append(
        _row(
            "streams held (p99 gap <= 2x direct's, p99 send-to-receipt < 2x the pace)",
            held,
            peer_held,
            peer_name="FastAPI",
            target=f">= {STREAMS_RATIO}x FastAPI",
            met=None if peer_held is None else (held or 0) >= STREAMS_RATIO * peer_held,
            digits=0,
        )
    )
    added, peer_added = _ttft_added(few["relay"]), _ttft_added(few["fastapi"])
    out.append(
        _row(
            f"TTFT added p50 ms @{few['relay']['streams']} streams",
            added,
            peer_added,
            peer_name="FastAPI",
            target="<= FastAPI's",
            met=None if None in (added, peer_added) else added <= peer_added,
        )
    )
    out.append(_row("  the floor", _ttft_added(few["floor"]), peer_added, peer_name="FastAPI", target="", met=None))
    one = {kind: ttft1[kind]["ttft_ms"]["p50"] - ttft1["direct"]["ttft_ms"]["p50"] for kind in ("relay", "plain")}
    out.append(
        _row(
            "TTFT added p50 ms @1 stream",
            one["relay"],
            one["plain"],
            peer_name="plain Django",
            target="<= plain Django's",
            met=one["relay"] <= one["plain"],
        )
    )
    out += _fast_model_rows(results.get("fast_model"))
    out += _memory_rows(results["rss_levels"])
    return out


def _floor_row(floor: dict | None, peer: dict) -> dict:
    """The cheapest relay Python can be (bench/floor_relay.py), against the same peer."""
    cpu = None if floor is None else _cpu(floor)
    return _row(
        "  the floor: raw asyncio, nothing checked or saved",
        cpu,
        _cpu(peer),
        peer_name="FastAPI",
        target="",
        met=None,
        digits=4,
    )


def _fast_model_rows(fast: dict | None) -> list[dict]:
    if fast is None:
        return []
    relay, peer, size = fast["relay"]["relay"], fast["fastapi"]["relay"], fast["size"]
    label = f"fast model ({size['streams']} streams, {1 / size['pace']:.0f} tokens/s each)"
    expected = relay["ok"] * size["tokens"]
    rate = relay["event_rate"]["p99"]
    return [
        _row(
            f"{label}: tokens received / sent",
            relay["stamped"],
            expected,
            peer_name="sent",
            target="all",
            met=relay["stamped"] == expected and not relay["errors"],
            digits=0,
        ),
        _row(
            f"{label}: events a second per stream, p99",
            rate,
            peer["event_rate"]["p99"],
            peer_name="FastAPI",
            target=f"<= about 60 ({FAST_EVENTS_PER_SECOND})",
            met=None if rate is None else rate <= FAST_EVENTS_PER_SECOND,
            digits=1,
        ),
        _row(
            f"{label}: CPU s per 1k tokens",
            relay["app_cpu_s_per_1k_tokens"],
            peer["app_cpu_s_per_1k_tokens"],
            peer_name="FastAPI",
            target=f"<= {FAST_CPU_RATIO}x FastAPI",
            met=_ratio_at_most(relay["app_cpu_s_per_1k_tokens"], peer["app_cpu_s_per_1k_tokens"], FAST_CPU_RATIO),
            digits=4,
        ),
        _floor_row(fast.get("floor"), fast["fastapi"]),
    ]


def _memory_rows(rss_levels: dict) -> list[dict]:
    """Both from the first round after the warm-up (RSS hardly ever shrinks)."""
    app, peer = rss_levels["relay"], rss_levels["fastapi"]
    return [
        _row(
            f"RSS KiB per open stream @{app['streams']}, from a warmed-up process",
            _per_stream_kib(app),
            _per_stream_kib(peer),
            peer_name="FastAPI",
            target=f"<= {RSS_PER_STREAM_KIB}",
            met=_per_stream_kib(app) <= RSS_PER_STREAM_KIB,
            digits=1,
        ),
        _row(
            f"process RSS MiB, peak with {app['streams']} streams open",
            _rss_kib(app) / 1024,
            _rss_kib(peer) / 1024,
            peer_name="FastAPI",
            target=f"<= {RSS_RATIO}x FastAPI",
            met=_ratio_at_most(_rss_kib(app), _rss_kib(peer), RSS_RATIO),
            digits=1,
        ),
    ]
