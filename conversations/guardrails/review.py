"""`after(turn)`: each guardrail sees the saved turn (a Turn), once its row
is written, and may return {"flag": reason}: the turn goes first in the
admin's review queue (admin_review.py) with that reason. This runs beside
the stream, after its final event: a reader never waits for it."""

import asyncio
import logging
import uuid
from collections.abc import Sequence

from ..models import Turn
from ..storage.threads import run_db
from ..stream import background
from .hooks import FAILED, failed, fails_closed, run_hook
from .loading import with_hook

logger = logging.getLogger(__name__)

FAILED_FLAG = "A guardrail could not check this answer."
MAX_FLAG_CHARS = 500  # Turn.review_flag


def review_later(turn_id: uuid.UUID, trace_id: str) -> None:
    """Start the after() guardrails on a saved turn, if there are any."""
    classes = with_hook("after")  # as the settings are now, when the turn is saved
    if classes:
        task = asyncio.create_task(review(turn_id, classes, trace_id), name=f"after {turn_id}")
        background.keep(task)


async def review(turn_id: uuid.UUID, classes: Sequence[type], trace_id: str) -> str:
    """Run the after() guardrails on the turn; the reason it was flagged, or ""."""
    try:
        turn = await run_db(Turn.objects.get, pk=turn_id)
        reason = await _flag_of(turn, classes, trace_id)
        if reason:
            await run_db(_flag, turn_id, reason)
        return reason
    except Exception:
        logger.exception("guardrail.after failed trace_id=%s", trace_id)
        return ""


async def _flag_of(turn: Turn, classes: Sequence[type], trace_id: str) -> str:
    reasons = []
    for cls in classes:
        guardrail = cls()
        result = await run_hook(guardrail, "after", turn, trace_id=trace_id)
        if isinstance(result, dict) and "flag" in result:
            reasons.append(str(result["flag"]) or "Flagged by a guardrail.")
        elif result is FAILED or result is not None:
            if result is not FAILED:
                failed(guardrail, "after", trace_id, f"returned {result!r:.200}, not None or flag")
            if fails_closed():
                reasons.append(FAILED_FLAG)
    return "; ".join(reasons)[:MAX_FLAG_CHARS]


def _flag(turn_id: uuid.UUID, reason: str) -> None:
    Turn.objects.filter(pk=turn_id).update(review_flag=reason)
