"""What Redis costs, and what one process and one Redis carry: the unit
costs behind docs/deployment.md's capacity table.

    python -m bench.scale [--runs 2] [--streams 100] [--redis redis://127.0.0.1:6379/11]

The relay rig of bench/relay.py (fake upstream, 200-token answers, the app on
one core, the upstream and the load client on the other) with one more app
process beside the main one: the same project with REDIS_URL set (the
answer journal and the cross-process answers on). Each run measures, at
`--streams` streams, the FastAPI relay, the app without Redis and the app
with it, one after the other; Redis's own CPU comes from its INFO counters
(used_cpu_user + used_cpu_sys) and its commands from total_commands_processed,
both read before and after the round, so nothing else may use that Redis
server meanwhile. Then two app processes on Redis, each on its own core, with
the upstream and the load client sharing both (bench/spread.py).
"""

import argparse
import tempfile
from pathlib import Path

import redis

from . import procs, report
from .relay import SIZES
from .rig import Rig, app_env

RSS_STREAMS = 50
REDIS_URL = "redis://127.0.0.1:6379/11"  # emptied first: nothing else may use it meanwhile


def redis_counters(client: redis.Redis) -> dict[str, float]:
    cpu, stats, memory = client.info("cpu"), client.info("stats"), client.info("memory")
    return {
        "cpu_s": cpu["used_cpu_user"] + cpu["used_cpu_sys"],
        "commands": stats["total_commands_processed"],
        "net_in": stats["total_net_input_bytes"],
        "memory": memory["used_memory"],
    }


def redis_round(rig: Rig, app: procs.Service, client: redis.Redis, streams: int) -> dict:
    """A steady round on the app with REDIS_URL, with Redis's share of it."""
    before = redis_counters(client)
    round_ = rig.steady("relay", streams, app=app)
    after = redis_counters(client)
    tokens = round_["tokens"] or 1
    round_["redis"] = {
        "cpu_s_per_1k_tokens": (after["cpu_s"] - before["cpu_s"]) / tokens * 1000,
        "commands_per_1k_tokens": (after["commands"] - before["commands"]) / tokens * 1000,
        "bytes_in_per_1k_tokens": (after["net_in"] - before["net_in"]) / tokens * 1000,
        "memory_after": after["memory"],
        "streams_done": round_["ok"],
    }
    return round_


def one_process(*, runs: int, streams: int, redis_url: str, pin: bool) -> dict:
    size = SIZES["full"] | {"stamp": True}
    layout = procs.cpu_layout(pin)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, Rig(size, layout, Path(tmp)) as rig:
        on_redis = rig._enter(rig._app(app_env(Path(tmp), rig.upstream.port) | {"REDIS_URL": redis_url}, APP))
        rig.warm_up()
        rig.steady("relay", 5, app=on_redis)
        idle = {"relay": procs.rss_bytes(rig.app.pid), "fastapi": procs.rss_bytes(rig.peers["fastapi"].pid)}
        idle["redis"] = procs.rss_bytes(on_redis.pid)
        rss = {
            "relay": rig.steady("relay", RSS_STREAMS),
            "fastapi": rig.steady("fastapi", RSS_STREAMS),
            "redis": rig.steady("relay", RSS_STREAMS, app=on_redis),
        }
        rounds = []
        for _ in range(runs):
            rounds.append(
                {
                    "fastapi": rig.steady("fastapi", streams),
                    "relay": rig.steady("relay", streams),
                    "redis": redis_round(rig, on_redis, client, streams),
                }
            )
    return {"idle_rss": idle, "rss_levels": rss, "rounds": rounds, "streams": streams}


APP = "chatstream.asgi:application"


def print_results(results: dict) -> None:
    one = results["one_process"]
    rows = []
    for number, round_ in enumerate(one["rounds"], 1):
        fastapi, relay, on_redis = (round_[k] for k in ("fastapi", "relay", "redis"))
        cpu = {k: round_[k]["app_cpu_s_per_1k_tokens"] for k in ("fastapi", "relay", "redis")}
        rows.append(
            [
                f"run {number}",
                report.fmt(cpu["fastapi"], 4),
                f"{report.fmt(cpu['relay'], 4)} ({cpu['relay'] / cpu['fastapi']:.2f}x)",
                f"{report.fmt(cpu['redis'], 4)} ({cpu['redis'] / cpu['relay']:.2f}x no Redis)",
                report.fmt(on_redis["redis"]["cpu_s_per_1k_tokens"], 4),
                report.fmt(on_redis["redis"]["commands_per_1k_tokens"], 0),
                " / ".join(report.fmt(r["ttft_ms"]["p50"], 1) for r in (fastapi, relay, on_redis)),
                " / ".join(f"{r['ok']}" for r in (fastapi, relay, on_redis)),
            ]
        )
    print(f"\nOne process, {one['streams']} streams, CPU s per 1,000 tokens")
    table = report.table(
        [
            "",
            "FastAPI relay",
            "chatstream",
            "chatstream, REDIS_URL",
            "Redis",
            "Redis commands",
            "TTFT p50 ms (F / c / R)",
            "streams done",
        ],
        rows,
    )
    print(table)
    idle, levels = one["idle_rss"], one["rss_levels"]
    mib = 1 / (1 << 20)
    print("\nProcess RSS MiB, idle after the warm-up / peak with 50 streams open")
    memory = [
        [kind, f"{idle[kind] * mib:.1f}", f"{levels[kind]['app_rss_peak'] * mib:.1f}"]
        for kind in ("fastapi", "relay", "redis")
    ]
    print(report.table(["", "idle", f"{RSS_STREAMS} streams"], memory))
    if "two_processes" in results:
        from . import spread

        spread.print_results(results["two_processes"])


def run(*, runs: int = 2, streams: int = 100, redis_url: str = REDIS_URL, pin: bool = True, spread_too: bool = True):
    results = {"one_process": one_process(runs=runs, streams=streams, redis_url=redis_url, pin=pin)}
    if spread_too:
        from . import spread

        results["two_processes"] = spread.run(redis_url=redis_url)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--redis", default=REDIS_URL)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--one", action="store_true", help="one process only, not the two-process figure")
    args = parser.parse_args()
    results = run(runs=args.runs, streams=args.streams, redis_url=args.redis, pin=args.pin, spread_too=not args.one)
    print_results(results)
    print(f"\nresults: {report.save(results, 'scale')}")


if __name__ == "__main__":
    main()
