"""The watchdog fires after a quiet spell, and only then.

Only lower bounds on time are asserted: a busy machine may run a timer late,
never early. Where a test must show that something came sooner, the two
times compared are far apart."""

import asyncio

from conversations.stream.watchdog import Watchdog


def fired_at(script, seconds: float = 0.05) -> list[float]:
    """Run `script(watchdog, times)`; when the watchdog fired, in seconds
    from its start."""

    async def run():
        loop = asyncio.get_running_loop()
        started, times = loop.time(), []
        watchdog = Watchdog(seconds, lambda: times.append(loop.time() - started))
        try:
            await script(watchdog, times)
        finally:
            watchdog.cancel()
        return times

    return asyncio.run(run())


def test_fires_after_each_quiet_spell():
    async def until_fired_twice(watchdog, times):
        while len(times) < 2:
            await asyncio.sleep(0.01)

    times = fired_at(until_fired_twice)
    assert times[0] >= 0.05 and times[1] - times[0] >= 0.05


def test_touches_keep_it_quiet_and_the_spell_counts_from_the_last():
    async def touch_then_wait(watchdog, times):
        for _ in range(10):
            await asyncio.sleep(0.01)
            watchdog.touch()
        while not times:
            await asyncio.sleep(0.01)

    times = fired_at(touch_then_wait)
    assert times[0] >= 0.15  # 0.05 after the last touch, not after the start


def test_restart_changes_the_length_from_now():
    async def shorten(watchdog, times):
        await asyncio.sleep(0.01)
        watchdog.restart(0.02)
        while not times:
            await asyncio.sleep(0.01)

    times = fired_at(shorten, seconds=5.0)
    assert 0.03 <= times[0] < 5.0  # 0.02 after the restart, not 5 s after the start
