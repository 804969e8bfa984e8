"""An answer's reservation (reservations.py), from the first model call to
the save: what start_turn reserves, and the AnswerHold its relay asks, as
output streams, whether the budgets still cover it (stream/spend_hold.py),
and before each later call of a tool loop whether that call fits. The
process streaming an answer renews its reservation once per answer lease
(one task for all of them); one that stops (a crash) lets it lapse.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .. import state
from ..conf import conf
from ..providers import Message
from ..providers.estimates import CHARS_PER_TOKEN, OutputCount, prompt_tokens, tokens_for_chars
from ..storage.threads import run_db
from ..stream.answer import PreparedTurn
from ..stream.tool_loop import Step
from . import budgets, ledger, reservations
from .reservations import Holder

logger = logging.getLogger(__name__)

OUTPUT_BOUNDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def output_tokens_for(options: Mapping[str, Any]) -> int:
    """The output a call may write, as reserved: its own bound (a token
    more: estimates round), or else CHATSTREAM_RESERVE_TOKENS."""
    for name in OUTPUT_BOUNDS:
        bound = options.get(name)
        if isinstance(bound, int) and bound > 0:
            return bound + 1
    return conf.CHATSTREAM_RESERVE_TOKENS


def reserve_first_call(holder: Holder, *, models: list[str], prompt: int, options: Mapping[str, Any]) -> int:
    """Reserve an answer's first model call (in start_turn's transaction:
    429 `budget_exceeded` undoes the message). The output tokens covered; 0
    when no budget applies (nothing reserved)."""
    if budgets.none_apply():
        return 0
    out = output_tokens_for(options)
    rates = reservations.rates_for(models)
    cost = rates.cost(tokens_in=prompt, tokens_out=out) if rates is not None else Decimal(0)
    return out if reservations.reserve(holder, cost=cost, tokens=prompt + out) else 0


class AnswerHold:
    """What an answer has reserved, as its relay streams (stream/spend_hold.py's SpendHold)."""

    def __init__(self, prepared: PreparedTurn, models: list[str]) -> None:
        self.holder = Holder(prepared.answer_turn_id, prepared.owner_id, prepared.api_key_id)
        self.models = models
        self.options = {**prepared.parameters, **prepared.request_options}
        self.covered = prepared.reserved_out  # output tokens of the call being made

    def begin(self) -> None:
        _renewed.add(self.holder.turn_id)
        _ensure_renewer()

    def end(self) -> None:
        """The answer has ended: its save settled the reservation (or, if the
        save failed, it lapses)."""
        _renewed.discard(self.holder.turn_id)

    def room(self, output: OutputCount) -> int:
        # A token short of what is covered: estimates round half up.
        return max(0, (self.covered - 1) * CHARS_PER_TOKEN - output.chars)

    async def extend(self, chars: int) -> None:
        """Reserve CHATSTREAM_RESERVE_TOKENS more output (or enough for
        `chars`), or what the budgets have left."""
        wanted = max(conf.CHATSTREAM_RESERVE_TOKENS, tokens_for_chars(chars) + 1)
        self.covered += await run_db(self._extend, wanted)

    def _extend(self, tokens: int) -> int:
        return reservations.extend(self.holder, tokens_out=tokens, rates=reservations.rates_for(self.models))

    async def next_call(self, steps: list[Step], messages: list[Message]) -> bool:
        """Does the tool loop's next call fit: the steps' cost so far and that call's most?"""
        out = await run_db(self._resize, steps, messages)
        if out:
            self.covered = out
        return bool(out)

    def _resize(self, steps: list[Step], messages: list[Message]) -> int:
        spent = sum((_step_cost(step) for step in steps), Decimal(0))
        used = sum((step.usage.get("tokens_in") or 0) + (step.usage.get("tokens_out") or 0) for step in steps)
        out = output_tokens_for(self.options)
        rates = reservations.rates_for(self.models)
        prompt = prompt_tokens(messages)
        cost = spent + (rates.cost(tokens_in=prompt, tokens_out=out) if rates is not None else Decimal(0))
        return out if reservations.resize(self.holder, cost=cost, tokens=used + prompt + out) else 0


def _step_cost(step: Step) -> Decimal:
    usage = step.usage
    cost = ledger.price(
        step.model,
        tokens_in=usage.get("tokens_in"),
        tokens_cached=usage.get("tokens_cached"),
        tokens_out=usage.get("tokens_out"),
    )
    return cost or Decimal(0)


# --- renewal: one task per process renews every reservation it holds ------------------

_renewed: set[uuid.UUID] = set()
_renewer: asyncio.Task | None = None


def _ensure_renewer() -> None:
    global _renewer
    if _renewer is None or _renewer.done():
        _renewer = asyncio.create_task(_renew(), name="chatstream reservations")


@state.forgotten_when("CHATSTREAM_ANSWER_LEASE_SECONDS")
def forget_renewer() -> None:
    """A new lease length (a test): the renewer, maybe asleep for the old
    one, stops, and the next reservation starts one at the new pace."""
    global _renewer
    if _renewer is not None and not _renewer.done():
        with contextlib.suppress(RuntimeError):  # its loop is closed: so is the task
            _renewer.get_loop().call_soon_threadsafe(_renewer.cancel)
    _renewer = None


async def _renew() -> None:
    """Push back the lapse of this process's reservations while it holds any."""
    while _renewed:
        await asyncio.sleep(conf.CHATSTREAM_ANSWER_LEASE_SECONDS)
        held = list(_renewed)
        if not held:
            return  # the next reservation starts another
        try:
            await run_db(reservations.renew, held)
        except Exception:  # the database is away: renewed at the next lease, or they lapse
            logger.exception("could not renew %d reservations", len(held))
