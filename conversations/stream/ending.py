"""What an answer's turn is saved from, and its final event, built once its
generation task has stopped, from what the relay holds: the output as its
readers saw it, the model call's completion and the figures.

Whatever fails while they are built, there is still an answer to save and a
final event to send: `failed_answer` keeps every character the readers were
given, with counts that cannot fail, and `final_event_of` falls back to an
`internal_error` event.
"""

import logging
import time
from typing import Protocol

from ..exceptions import AnswerFailed, ServerShutdown, UpstreamError
from ..providers import Completion, Provider
from ..providers.base import Message
from .answer import Answer, PreparedTurn
from .events import ERROR, Event, FinishReason, final_event
from .figures import Figures
from .readers import Readers
from .tool_loop import call_usage, summed

logger = logging.getLogger(__name__)

FAILED_MESSAGE = "The answer could not be completed because of an error on the server; what was written is kept."


class Ended(Protocol):
    """What of an AnswerRelay its ending reads."""

    prepared: PreparedTurn
    provider: Provider
    trace_id: str
    completion: Completion
    figures: Figures
    readers: Readers
    finish_reason: str
    error: UpstreamError | ServerShutdown | AnswerFailed | None
    attempts: list[dict[str, str]]
    messages: list[Message]  # the prompt of the last model call
    spent: list[dict]  # the usage of each earlier model call (the tool loop's steps)
    malformed_before: int  # unreadable chunks of the earlier model calls

    @property
    def produced(self) -> bool: ...

    @property
    def redactions(self) -> int: ...


def answer_of(relay: Ended) -> Answer:
    """The answer as it ended, with its usage and figures."""
    completion, figures, error = relay.completion, relay.figures, relay.error
    parts = relay.readers.output.parts()
    return Answer(
        **vars(parts),  # the text of each kind, and their order
        finish_reason=_finish_reason(relay.finish_reason, relay.completion.tool_calls),
        model=completion.model,
        provider=relay.provider.name,
        trace_id=relay.trace_id,
        ttft_ms=figures.ttft_ms(),
        ttft_answer_ms=figures.ttft_answer_ms(),
        duration_ms=figures.duration_ms(time.monotonic()),
        **usage_of(relay),
        malformed_chunks=relay.malformed_before + completion.malformed_chunks,
        redactions=relay.redactions,
        cancel_latency_ms=figures.cancel_latency_ms(),
        tokens_after_cancel=figures.tokens_after_cancel(completion.deltas),
        error_code=error.code if error else "",
        error_detail=str(error) if error else "",
        attempts=relay.attempts,
        token_gaps=figures.gaps.tobytes(),
    )


def failed_answer(relay: Ended) -> Answer:
    """The answer as an `internal_error`: the output as the readers saw it,
    and only counts that cannot fail (the prompt's, as estimated when it was
    built, and the output counted as it streamed), so it is still billed."""
    completion = relay.completion
    return Answer(
        **vars(relay.readers.output.parts()),
        finish_reason=FinishReason.ERROR,
        model=completion.model,
        provider=relay.provider.name,
        trace_id=relay.trace_id,
        ttft_ms=None,
        duration_ms=relay.figures.duration_ms(time.monotonic()),
        tokens_in=relay.prepared.prompt_tokens if completion.responded else None,
        tokens_out=completion.output.tokens() if completion.responded else None,
        tokens_estimated=True,
        usage_source="estimated" if completion.responded else "none",
        error_code=AnswerFailed.code,
        error_detail=FAILED_MESSAGE,
        attempts=relay.attempts,
    )


def final_event_of(answer: Answer | None, length: int, trace_id: str) -> Event:
    """The saved answer's `done` or `error` event; `internal_error` for an
    answer that was not saved, or whose event cannot be built."""
    if answer is not None:
        try:
            return final_event(answer, length)
        except Exception:
            logger.exception("could not build the final event trace_id=%s", trace_id)
    data = {"code": AnswerFailed.code, "message": FAILED_MESSAGE, "finish_reason": FinishReason.ERROR}
    return ERROR, data, length


def usage_of(relay: Ended) -> dict:
    """The answer's counts: each model call's (tool_loop.call_usage), summed
    over the calls of a tool loop."""
    last = call_usage(relay.completion, relay.messages, produced=relay.produced)
    return summed([*relay.spent, last])


def _finish_reason(finish_reason: str, tool_calls: object) -> str:
    # Some servers (Ollama) end a tool-calling answer with `stop`: the last
    # model call's calls count (a tool loop's earlier ones have their results).
    if finish_reason == FinishReason.STOP and tool_calls:
        return FinishReason.TOOL_CALLS
    return finish_reason
