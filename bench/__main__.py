"""`python -m bench [--quick] [--no-pin] [--servers uvicorn,daphne]`: the
client comparison; the relay benchmark under each server (TTFT, gaps, cancel
propagation, CPU, memory, concurrency ramp, a fast model) against the client
reading the upstream directly, a FastAPI relay, a plain Django relay and the
floor, ending with the targets as ratios to them (bench/targets.py); what
REDIS_URL costs, and two processes on one Redis (bench.scale: Redis database
11 emptied first); a stalled reader's cost under each server (10 MB
answers); what the opt-in handler and middleware each save (bench.stacks);
reasoning tokens against answer tokens (bench.reasoning); the tool loop's
own time between model calls (bench.tool_loop); the database writes per
turn; and what a 20 MB upload and a message with a 10 MB PDF cost, beside a
plain Django upload view (bench.files, on PostgreSQL). Prints the tables
and saves one JSON file under bench/results/. About 35 minutes; --quick
about 8. The chat page's figures: `python -m bench.page`."""

import argparse
import sys
import time

from . import clients, files, reasoning, relay, report, scale, stacks, stalled, tool_loop, writes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about a minute")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    parser.add_argument(
        "--only",
        choices=("clients", "relay", "scale", "stacks", "reasoning", "stalled", "tool_loop", "writes", "files"),
        help="run one of the benchmarks",
    )
    parser.add_argument("--tokens", type=int, help="relay: tokens per answer (default 200; --quick 50)")
    parser.add_argument(
        "--servers", default="uvicorn,daphne", help="relay: the ASGI servers to run the app under (comma-separated)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    if args.only in (None, "clients"):
        print("running bench.clients ...", file=sys.stderr, flush=True)
        results["clients"] = clients.run(quick=args.quick, pin=args.pin)
        report.print_clients(results["clients"])
    if args.only in (None, "relay"):
        for server in args.servers.split(","):
            print(f"\nrunning bench.relay under {server} ...", file=sys.stderr, flush=True)
            results[f"relay-{server}"] = relay.run(quick=args.quick, pin=args.pin, tokens=args.tokens, server=server)
            report.print_relay(results[f"relay-{server}"])
    if args.only in (None, "scale"):
        print("\nrunning bench.scale ...", file=sys.stderr, flush=True)
        results["scale"] = scale.run(runs=1 if args.quick else 2, pin=args.pin, spread_too=not args.quick)
        scale.print_results(results["scale"])
    if args.only in (None, "stacks"):
        print("\nrunning bench.stacks ...", file=sys.stderr, flush=True)
        results["stacks"] = stacks.run(quick=args.quick, pin=args.pin)
        stacks.print_results(results["stacks"])
    if args.only in (None, "reasoning"):
        print("\nrunning bench.reasoning ...", file=sys.stderr, flush=True)
        results["reasoning"] = reasoning.run(quick=args.quick, pin=args.pin)
        reasoning.print_results(results["reasoning"])
    if args.only in (None, "stalled"):
        # 10 MB answers: past what loopback's socket buffers hold, where the servers differ.
        print("\nrunning bench.stalled ...", file=sys.stderr, flush=True)
        results["stalled"] = stalled.run(pin=args.pin, streams=10, token_chars=1000)
        stalled.print_results(results["stalled"])
    if args.only in (None, "tool_loop"):
        print("\nrunning bench.tool_loop ...", file=sys.stderr, flush=True)
        results["tool_loop"] = tool_loop.run(quick=args.quick, pin=args.pin)
        tool_loop.print_results(results["tool_loop"])
    if args.only in (None, "writes"):
        print("\nrunning bench.writes ...", file=sys.stderr, flush=True)
        results["writes"] = writes.run()
        writes.print_writes(results["writes"])
    if args.only in (None, "files"):
        print("\nrunning bench.files ...", file=sys.stderr, flush=True)
        results["files"] = files.run(quick=args.quick, pin=args.pin)
        files.print_results(results["files"])
    path = report.save(results, "bench-quick" if args.quick else "bench")
    print(f"\nresults: {path}  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
