"""What a tool learns about the call it serves: whose answer, in which
conversation and turn, under which trace id."""

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from ..storage.threads import run_db


@dataclass(frozen=True)
class ToolContext:
    """Given to a tool that has a parameter annotated `ToolContext` (that
    parameter is no part of the tool's schema).

    The user is carried by id, so the answer's loop needs no database call
    to make one: `context.user` loads the row at first use and keeps it. A
    sync tool runs on a thread of its own, where the ORM may be used, so it
    reads `context.user` and queries as that user
    (`Order.objects.filter(owner=context.user)`). An async tool, on the event
    loop, awaits `context.auser()` and sends its own queries through
    `storage.threads.run_db` (or `sync_to_async`)."""

    user_id: int
    conversation_id: uuid.UUID | None = None
    turn_id: uuid.UUID | None = None  # the answer's turn
    trace_id: str = ""

    @functools.cached_property
    def user(self) -> Any:
        """The user, from the database at first use: only off the event loop
        (Django refuses the ORM there)."""
        from django.contrib.auth import get_user_model  # the ORM only when asked for

        return get_user_model()._default_manager.get(pk=self.user_id)

    async def auser(self) -> Any:
        """The user, for an async tool: loaded on a database thread."""
        if "user" in self.__dict__:  # loaded already (cached_property keeps it there, frozen or not)
            return self.__dict__["user"]
        return await run_db(lambda: self.user)
