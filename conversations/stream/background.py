"""Tasks that run on their own (an answer's generation, its journal, a slot
given back, the drain at shutdown). The event loop holds tasks only weakly,
so one nobody awaits could be collected mid-run: `keep` holds it until done."""

import asyncio

_alive: set[asyncio.Future] = set()


def keep(task: asyncio.Future) -> asyncio.Future:
    _alive.add(task)
    task.add_done_callback(_alive.discard)
    return task


async def settle(timeout: float) -> None:
    """Wait up to `timeout` for this loop's kept tasks to end (before the
    clients they use are closed)."""
    loop = asyncio.get_running_loop()
    pending = [task for task in _alive if not task.done() and task.get_loop() is loop]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
