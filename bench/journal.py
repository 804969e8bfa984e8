"""The answers' journal alone: CPU per entry that this process spends writing
to Redis through the journal writer (live/journal_writer.py), as many
answers hand it their events at once, with redis-py's connections packing
commands in C (hiredis, as the app's pools do: live/client.py) and, for
comparison, in redis-py's own Python.

    python -m bench.journal [--answers 100] [--entries 300] [--runs 3] [--redis redis://127.0.0.1:6379/12]

In process, no app server: the figure is the writer's own cost, which the
whole app's bench (bench.scale) measures with everything else around it, in
rounds whose noise on this machine (±15 %) hides a change of this size.
The Redis database is emptied before and after.
"""

import argparse
import asyncio
import time

import redis.asyncio as aioredis

from conversations.live.client import packing_in_c
from conversations.live.journal_writer import JournalWriter

from . import report

REDIS_URL = "redis://127.0.0.1:6379/12"
EVENT_SECONDS = 0.002  # between one answer's events: a busy process's pace


async def cpu_per_entry(redis_url: str, *, answers: int, entries: int, packing: str) -> float:
    """Microseconds of this process's CPU per journal entry written."""
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=50, decode_responses=True)
    redis = aioredis.Redis.from_pool(packing_in_c(pool) if packing == "c" else pool)
    await redis.flushdb()
    writer = JournalWriter(redis)

    async def answer(turn: int) -> None:
        for n in range(entries):
            fields = {"k": "delta", "s": n * 6, "e": n * 6 + 6, "d": "token "}
            await writer.write(f"bench:{turn}", fields, refresh=n % 50 == 0)
            await asyncio.sleep(EVENT_SECONDS)

    started = time.process_time()
    await asyncio.gather(*(answer(turn) for turn in range(answers)))
    cpu = time.process_time() - started
    await writer.close()
    await redis.flushdb()
    await redis.aclose()
    return cpu / (answers * entries) * 1e6


def run(*, redis_url: str = REDIS_URL, answers: int = 100, entries: int = 300, runs: int = 3) -> dict:
    from django.conf import settings

    if not settings.configured:  # the writer reads the app's settings: their defaults
        settings.configure()
    results: dict[str, list[float]] = {"c": [], "python": []}
    for _ in range(runs):  # alternated: the machine's drift falls on both
        for packing in results:
            figure = cpu_per_entry(redis_url, answers=answers, entries=entries, packing=packing)
            results[packing].append(asyncio.run(figure))
    return {"answers": answers, "entries": entries, "us_per_entry": results}


def print_results(results: dict) -> None:
    rows = [[packing, " / ".join(f"{us:.1f}" for us in runs)] for packing, runs in results["us_per_entry"].items()]
    print(f"\nJournal writer, {results['answers']} answers x {results['entries']} entries: µs of CPU per entry")
    print(report.table(["commands packed in", "each run"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--entries", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default=REDIS_URL)
    args = parser.parse_args()
    results = run(redis_url=args.redis, answers=args.answers, entries=args.entries, runs=args.runs)
    print_results(results)
    print(f"results: {report.save({'journal': results}, 'journal')}")


if __name__ == "__main__":
    main()
