"""The watchdog fires after a quiet spell, and only then."""

import asyncio

from conversations.watchdog import Watchdog


def fired_at(script) -> list[float]:
    async def run():
        loop = asyncio.get_running_loop()
        started, times = loop.time(), []
        watchdog = Watchdog(0.05, lambda: times.append(loop.time() - started))
        try:
            await script(watchdog)
        finally:
            watchdog.cancel()
        return times

    return asyncio.run(run())


def test_fires_after_each_quiet_spell():
    times = fired_at(lambda watchdog: asyncio.sleep(0.14))
    assert len(times) == 2 and 0.05 <= times[0] < 0.075 and times[1] - times[0] >= 0.05


def test_touches_keep_it_quiet_and_the_spell_counts_from_the_last():
    async def touch_then_wait(watchdog):
        for _ in range(10):
            await asyncio.sleep(0.01)
            watchdog.touch()
        await asyncio.sleep(0.07)

    times = fired_at(touch_then_wait)
    assert len(times) == 1 and times[0] >= 0.15  # 0.05 after the last touch, not after the start


def test_restart_changes_the_length_from_now():
    async def shorten(watchdog):
        await asyncio.sleep(0.01)
        watchdog.restart(0.02)
        await asyncio.sleep(0.04)

    times = fired_at(shorten)
    assert 0.03 <= times[0] < 0.05  # not 0.05 after the start
