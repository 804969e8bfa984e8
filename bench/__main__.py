"""`python -m bench [--quick] [--no-pin]`: the client comparison, then the
relay benchmark; prints both tables and saves one JSON file under
bench/results/. About 3 minutes; --quick about 1."""

import argparse
import sys
import time

from . import clients, relay, report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about a minute")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    parser.add_argument("--only", choices=("clients", "relay"), help="run one of the two benchmarks")
    parser.add_argument("--tokens", type=int, help="relay: tokens per answer (default 100; --quick 50)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    if args.only in (None, "clients"):
        print("running bench.clients ...", file=sys.stderr, flush=True)
        results["clients"] = clients.run(quick=args.quick, pin=args.pin)
        report.print_clients(results["clients"])
    if args.only in (None, "relay"):
        print("\nrunning bench.relay ...", file=sys.stderr, flush=True)
        results["relay"] = relay.run(quick=args.quick, pin=args.pin, tokens=args.tokens)
        report.print_relay(results["relay"])
    path = report.save(results, "bench-quick" if args.quick else "bench")
    print(f"\nresults: {path}  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
