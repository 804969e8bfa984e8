"""Tasks that run on their own (an answer's generation, its journal, a slot
given back, the drain at shutdown). The event loop holds tasks only weakly,
so one nobody awaits could be collected mid-run: `keep` holds it until done."""

import asyncio

_alive: set[asyncio.Future] = set()


def keep(task: asyncio.Future) -> asyncio.Future:
    _alive.add(task)
    task.add_done_callback(_alive.discard)
    return task
