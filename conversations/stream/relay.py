"""The generation task of one answer: the model call runs in its own task,
readers follow it (readers.py), and the task alone saves the turn when the
stream ends.

    services ──start()──▶ generation task ──provider.stream()──▶ upstream
        ▲                      │ appends text, wakes the readers
        └──── follow() ◀───────┘ (whatever is pending, in one delta)

With tools (tool_loop.py), a model call that ends in tool calls has them run
(run_calls, each recorded first; one that needs approval waits for it,
approvals.py), a `tool_result` relayed as each ends, the step saved, then a
`step` and the next model call with the results, up to
CHATSTREAM_MAX_TOOL_STEPS calls (the last made with `tool_choice: "none"`)
while the budgets allow.

Whatever ends the stream (finish, error, timeout, cancel, client gone), the
task records why, saves the turn once under `asyncio.shield` (with the
`save` it was given), and only then lets the readers have the final event.
See ARCHITECTURE.md.
"""

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

from ..conf import conf
from ..exceptions import AnswerEnded, AnswerFailed, BudgetReached, ServerShutdown, UpstreamError, UpstreamTimeout
from ..providers import APPROVAL, STEP, TOOL_RESULT, Completion, Message, Piece, Provider
from ..providers.tool_calls import ToolCalls
from ..tools import ToolContext, ToolResult, run_calls
from . import background, ending, registry, retries, shutdown, telemetry
from .answer import Answer, PreparedTurn
from .approvals import Approvals, Decision
from .events import FinishReason, start_event
from .figures import Figures
from .output import approval_text, result_text, step_text
from .pieces import OutputGuard, PieceRelay
from .presence import Presence
from .readers import Readers
from .spend_hold import SpendHold
from .tool_loop import Step, Toolbox, call_usage, step_messages, step_output
from .watchdog import Watchdog

logger = logging.getLogger(__name__)

SaveAnswer = Callable[[Answer], Awaitable[Answer]]  # the answer as saved (with its cost)


class AnswerRelay(PieceRelay):
    def __init__(
        self,
        *,
        prepared: PreparedTurn,
        provider: Provider,
        trace_id: str,
        received_at: float,
        save: SaveAnswer,
        toolbox: Toolbox | None = None,
        hold: SpendHold | None = None,
        guard: OutputGuard | None = None,
    ) -> None:
        self.prepared = prepared
        self.provider = provider
        self.trace_id = trace_id
        self.figures = Figures(received_at)
        self.completion = Completion(model=provider.model)
        start = start_event(
            turn_id=prepared.answer_turn_id,
            conversation_id=prepared.conversation_id,
            trace_id=trace_id,
            model=provider.model,
        )
        self.presence = Presence()
        self.readers = Readers(start=start, on_attach=self.presence.reader_came, frame=conf.CHATSTREAM_FRAME_SECONDS)
        for kind, text in prepared.prefix:  # a continued answer's output so far: no reader yet to tell
            self.readers.output.append(text, kind)
        self._prefix_length = self.readers.length  # where this model call's output begins
        self.toolbox = toolbox  # None: no tools run (none given, turned off, or the OpenAI door)
        self.hold = hold  # what the budgets reserved for its model calls; None: no budget applies
        self.messages: list[Message] = prepared.messages  # the prompt of the model call being made
        # The model call being made, counted from 1 (a continued answer's own steps counted too).
        self.step = 1 + sum(kind == STEP for kind, _ in prepared.prefix)
        self.spent: list[dict] = []  # the usage of each earlier model call (tool_loop.call_usage)
        self.steps: list[Step] = []  # the earlier model calls, as saved
        self._step_saved: asyncio.Task | None = None  # the last step's save, made while the next call starts
        self._step_start = self._prefix_length  # where the step being made began in the output
        self.approvals = Approvals()  # calls waiting for a person's decision
        self.malformed_before = 0  # unreadable chunks of the earlier model calls (and tries)
        self.follow = self.readers.follow  # readers follow the fan-out directly: no layer per event
        self.finish_reason: str = ""
        self.error: UpstreamError | ServerShutdown | AnswerFailed | None = None
        self.attempts: list[dict[str, str]] = []  # failed model calls, for the turn
        self._save_answer = save
        # The on_output guardrails (CHATSTREAM_GUARDRAILS, and the redaction
        # CHATSTREAM_REDACT adds): a piece reaches the readers, and so the
        # journal and the turn, only as they let it out. None: there are none.
        self._guard = guard
        self._running = False  # the task has taken its first step
        self._stop_requested = False  # the first reason given is the one saved
        self._saving = False
        self._cancel_reason: str = FinishReason.CLIENT_DISCONNECTED
        self._interrupted = False  # by the process stopping
        self._task: asyncio.Task | None = None

    @property
    def turn_id(self) -> uuid.UUID:
        return self.prepared.answer_turn_id

    @property
    def owner_id(self) -> int:
        return self.prepared.owner_id

    @property
    def length(self) -> int:
        """Characters produced so far: the event ids."""
        return self.readers.length

    @property
    def ending(self) -> bool:
        """Its turn is being saved (or is saved): nothing left to stop."""
        return self._saving or self._task is None or self._task.done()

    @property
    def awaiting_person(self) -> bool:
        """Is the answer waiting for a decision on a tool call (not for the model)?"""
        return self.approvals.pending

    @property
    def redactions(self) -> int:
        """Matches masked as they streamed (CHATSTREAM_REDACT)."""
        return self._guard.masked if self._guard is not None else 0

    @property
    def produced(self) -> bool:
        """Has this model call's output reached the readers (a continued
        answer's earlier text, and earlier steps' output, aside)?"""
        return self.readers.length > self._prefix_length

    # --- control --------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"answer {self.prepared.answer_turn_id}")
        background.keep(self._task)
        if (hold := self.hold) is not None:
            hold.begin()
            self._task.add_done_callback(lambda _: hold.end())
        registry.add(self)
        shutdown.watch_signals()
        telemetry.stream_started(self)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the answer is saved (or given up)."""
        assert self._task is not None, "start() first"
        self._task.add_done_callback(lambda _: callback())

    def interrupt(self) -> None:
        """The process is stopping: end the answer now, saved as an error."""
        self._interrupted = True
        self.cancel(FinishReason.ERROR)

    def cancel(self, reason: str = FinishReason.CANCELLED) -> None:
        """Stop the model call; the turn is saved with `reason`. Once the save
        has begun there is nothing left to stop."""
        if self._task is None or self._task.done() or self._saving or self._stop_requested:
            return
        self._cancel_reason, self._stop_requested = reason, True
        telemetry.stream_cancelled(self, reason)
        self.figures.cancelled(self.completion.deltas)
        # A task cancelled before its first step never runs its body, and so
        # would save nothing: that one starts, sees the request and stops.
        if self._running:
            self._task.cancel()

    def release(self) -> None:
        """A reader is gone; if it was the last, CHATSTREAM_ON_DISCONNECT
        decides what becomes of the answer (presence.py)."""
        self.presence.release(self)

    def release_threadsafe(self) -> None:
        """`release` from another thread (Django may close responses on one)."""
        self._loop.call_soon_threadsafe(self.presence.release, self)

    async def close(self) -> None:
        """Called when a response ends for any reason: releases the answer,
        and if that stopped it, waits until the turn is saved (shielded, so a
        second cancellation cannot abandon the save). An answer that waits
        for a person goes on: nothing to wait for here."""
        self.release()
        if not (self.readers.followers or self.presence.awaiting_return or self.awaiting_person):
            await self.wait_saved()

    async def stop(self) -> None:
        """Cancel (a Stop from any tab) and wait until the turn is saved."""
        self.cancel(FinishReason.CANCELLED)
        await self.wait_saved()

    async def wait_saved(self) -> None:
        """Until the turn is saved (for a cancel request to report on it)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def decided(self, call_id: str) -> None:
        """A decision on `call_id` is in the database (served here)."""
        self.decision_written(call_id)

    def decision_written(self, call_id: str) -> None:
        """A decision on `call_id` is in the database: its wait reads it now."""
        self.approvals.decided(call_id)

    def attach(self) -> None:
        """One more reader (here, or in another process through Redis)."""
        self.readers.attach()

    def detach(self) -> None:
        """A reader in another process has gone (`release` follows)."""
        self.readers.detach()

    # --- the generation task --------------------------------------------------

    async def _run(self) -> None:
        self._running = True
        try:
            if self._stop_requested:
                raise asyncio.CancelledError
            self._limit_tools()
            await self._call_model()
            while self._wants_tools():
                await self._tool_step()
        except AnswerEnded as exc:  # an approval that never came, a budget reached
            self.finish_reason = exc.finish_reason
        except asyncio.CancelledError:
            # Not re-raised: this task's whole job is to save the turn, and
            # finishing normally is how it says the turn is saved.
            self.finish_reason = self._cancel_reason
            if self._interrupted:
                self.error = ServerShutdown("The server was restarted before the answer ended; send it again.")
        except UpstreamError as exc:
            self.finish_reason, self.error = FinishReason.ERROR, exc
        except Exception:
            logger.exception("answer failed trace_id=%s", self.trace_id)
            self.finish_reason, self.error = FinishReason.ERROR, AnswerFailed(ending.FAILED_MESSAGE)
        else:
            self.finish_reason = self.completion.finish_reason or FinishReason.STOP
        self._saving = True
        answer: Answer | None = None
        try:
            answer = await asyncio.shield(self._save(self._ending()))
        finally:
            registry.remove(self)
            self.readers.end(ending.final_event_of(answer, self.length, self.trace_id))

    # --- the end: whatever fails here, the turn is saved and the readers told ----

    def _ending(self) -> Answer:
        """The answer as it ended (ending.py). Should building it fail, the
        answer is an error that still holds every character its readers were given."""
        try:
            # What was held back (an unfinished tag, a tool call whose arguments
            # never closed, a tail that might have been masked), however it ended.
            self._relay_rest()
            answer = ending.answer_of(self)
            return self._guard.noted(answer) if self._guard is not None else answer
        except Exception:
            logger.exception("could not build the answer trace_id=%s", self.trace_id)
            return ending.failed_answer(self)

    async def _call_model(self) -> None:
        """The model call, tried again and then with each fallback model while
        no token has come (retries.py); every failed try is recorded."""
        models = [self.provider.model, *conf.LLM_FALLBACK_MODELS]
        for index, model in enumerate(models):
            try:
                # Once any output has reached a reader, a second call would
                # write different output after it: no retry, no fallback.
                await retries.with_retries(
                    functools.partial(self._try_model, model), before_text=lambda: not self.produced
                )
                return
            except UpstreamError:
                if self.produced or index == len(models) - 1:
                    raise
                logger.warning("falling back trace_id=%s from=%s to=%s", self.trace_id, model, models[index + 1])

    # --- the tool loop (tool_loop.py) ------------------------------------------

    def _wants_tools(self) -> bool:
        """The model call ended asking for tools, and another call is allowed."""
        if self.toolbox is None or self.step >= conf.CHATSTREAM_MAX_TOOL_STEPS:
            return False
        # Some servers (Ollama) end a call of tool calls with `stop`; a call
        # that says `tool_calls` but sent none has nothing to run.
        reason = self.completion.finish_reason
        return reason in (FinishReason.TOOL_CALLS, FinishReason.STOP) and bool(self.completion.tool_calls)

    def _limit_tools(self) -> None:
        """The last model call allowed is made with `tool_choice: "none"`."""
        if self.toolbox is not None and self.step >= conf.CHATSTREAM_MAX_TOOL_STEPS:
            self.provider.request_options = {**self.provider.request_options, "tool_choice": "none"}

    async def _tool_step(self) -> None:
        """Run the calls the model call ended with, save the step, then make
        the next model call with their results if the budgets allow. Never
        retried: its output follows output already read."""
        assert self.toolbox is not None
        self._relay_held()
        await self._steps_saved()  # a call id the last step ran is claimed only once its result is on its row
        text, calls = step_output(self.readers.output, self._prefix_length)
        spent = call_usage(self.completion, self.messages, produced=self.produced)
        context = ToolContext(
            user_id=self.owner_id,
            conversation_id=self.prepared.conversation_id,
            turn_id=self.turn_id,
            trace_id=self.trace_id,
        )
        toolbox = self.toolbox
        results = await run_calls(
            calls,
            toolbox.tools,
            context,
            claim=lambda call: toolbox.admit(call, self._ask),
            on_result=self._relay_result,
        )
        self.messages = [*self.messages, *step_messages(text, calls, results)]
        self._save_step(spent, results)
        if not await self._may_call_again():
            raise BudgetReached
        self.step += 1
        self._step_start = self.length
        self.readers.append(step_text(self.step), STEP)
        self._limit_tools()
        self.spent.append(spent)  # with no await since: a cancel from here on counts the next call
        self._prefix_length = self.length
        await self._try_model(self.completion.model)

    async def _may_call_again(self) -> bool:
        """Do the budgets allow the loop's next model call (reserved, with a hold)?"""
        if self.hold is not None:
            return await self.hold.next_call(self.steps, self.messages)
        return await self.toolbox.records.within_budget(self.steps)  # type: ignore[union-attr]

    async def _ask(self, call: Mapping[str, Any]) -> Decision:
        """Ask the user to approve a call, and wait for their decision
        (ApprovalTimedOut after CHATSTREAM_APPROVAL_TIMEOUT_SECONDS). Readers
        may come and go meanwhile: the answer waits for a person, not for them."""
        request = {key: str(call.get(key, "")) for key in ("id", "name", "arguments")}
        self.readers.append(approval_text(request), APPROVAL)
        records = self.toolbox.records  # type: ignore[union-attr]
        decision = await self.approvals.wait(request["id"], records.decision, conf.CHATSTREAM_APPROVAL_TIMEOUT_SECONDS)
        self.presence.person_answered(self)
        return decision

    def _save_step(self, spent: dict[str, Any], results: list[ToolResult]) -> None:
        """Save the step whose tools have run, with their results, while the
        next model call starts (the call waits for no write of its own; its
        first output comes long after the step is committed)."""
        output = [[kind, text] for kind, text, _ in self.readers.output.since(self._step_start)]
        step = Step(n=self.step, model=self.completion.model, output=output, usage=spent)
        self.steps.append(step)
        save = self.toolbox.records.save_step(step, results)  # type: ignore[union-attr]
        self._step_saved = asyncio.create_task(save, name=f"step {step.n} of {self.turn_id}")
        background.keep(self._step_saved)

    async def _steps_saved(self) -> None:
        """Until the last step's save has ended (a failed one is logged: the
        answer goes on, and its turn holds the step all the same)."""
        if (saving := self._step_saved) is None:
            return
        try:
            await asyncio.shield(saving)
        except asyncio.CancelledError:
            if not saving.done():
                raise  # this task is cancelled: the turn's save waits for it again
        except Exception:
            logger.exception("could not save a step trace_id=%s", self.trace_id)
        self._step_saved = None

    async def _relay_result(self, result: ToolResult) -> None:
        self.readers.append(result_text(result.event()), TOOL_RESULT)

    def _relay_held(self) -> None:
        """What the model call's output held back (an unfinished tag, a tail
        that might be masked) goes out before the tools' results."""
        self._relay_rest()

    async def _try_model(self, model: str) -> None:
        self.malformed_before += self.completion.malformed_chunks
        self.figures.call_began()
        self.completion = Completion(model=model)
        if self.step > 1:  # ids for calls the server names none, unused by earlier steps
            self.completion.tool_calls = ToolCalls(f"call_{self.step}_")
        self.figures.upstream_closed_at = None
        self.figures.heard_from_model = False
        try:
            await self._relay_tokens()
        except UpstreamError as exc:
            self.attempts.append({"model": model, "code": exc.code, "message": str(exc)[:500]})
            telemetry.model_call_failed(self, model, exc)
            raise

    async def _relay_tokens(self) -> None:
        stream = self.provider.stream(self.messages, self.completion)
        try:
            async with aclosing(stream), asyncio.timeout(None) as deadline:
                silence = Watchdog(conf.LLM_FIRST_TOKEN_TIMEOUT, lambda: self._model_silent(deadline))
                try:
                    await self._take_tokens(stream, silence)
                finally:
                    silence.cancel()
        except TimeoutError as exc:
            if not self.figures.heard_from_model:
                raise UpstreamTimeout(
                    "The model did not start answering in time.",
                    detail=f"LLM_FIRST_TOKEN_TIMEOUT={conf.LLM_FIRST_TOKEN_TIMEOUT:g}",
                ) from exc
            raise UpstreamTimeout(
                "The model stopped answering partway through.", detail=f"LLM_IDLE_TIMEOUT={conf.LLM_IDLE_TIMEOUT:g}"
            ) from exc
        finally:
            # aclosing has closed the provider's stream: for a cancel, this is
            # when the upstream learned of it.
            self.figures.upstream_closed_at = time.monotonic()

    async def _take_tokens(self, stream: AsyncIterator[list[Piece]], silence: Watchdog) -> None:
        figures, readers = self.figures, self.readers
        async for pieces in stream:
            # Anything the model sends (reasoning, part of a tool call, even
            # a role chunk) shows it is alive: the first-token wait is over.
            if not figures.heard_from_model:
                figures.heard_from_model = True
                silence.restart(conf.LLM_IDLE_TIMEOUT)
            silence.touch()
            if pieces:
                if self.hold is not None:
                    await self._relay_within_hold(pieces)
                else:
                    await self._relay_checked(pieces)
                silence.touch()  # time in a guardrail or reserving is not the model's silence
            if readers.behind():
                await self._wait_for_reader()
                silence.touch()

    async def _wait_for_reader(self) -> None:
        """Hold the model back until a reader takes some of the backlog; a
        reader that takes nothing for CHATSTREAM_READER_STALL_SECONDS (a
        client that stopped reading but keeps its connection) ends the
        answer as `client_stalled`, freeing the model call and the slot."""
        try:
            async with asyncio.timeout(conf.CHATSTREAM_READER_STALL_SECONDS):
                await self.readers.wait_for_reader()
        except TimeoutError:
            self._stop_requested, self._cancel_reason = True, FinishReason.CLIENT_STALLED
            telemetry.stream_cancelled(self, FinishReason.CLIENT_STALLED)
            self.figures.cancelled(self.completion.deltas)
            raise asyncio.CancelledError from None  # ends the call as a cancel does, with this reason

    def _first_output(self, ttft_s: float) -> None:
        telemetry.first_token(self, ttft_s)

    def _model_silent(self, deadline: asyncio.Timeout) -> None:
        # Waiting on our own reader is not the model's silence.
        if not self.readers.producer_waiting:
            deadline.reschedule(self._loop.time())  # expires now: TimeoutError in _relay_tokens

    async def _save(self, answer: Answer) -> Answer | None:
        """The answer as saved; if saving it fails, the same output saved as
        an `internal_error`; None if that fails too (a database that is
        gone: the answer is then saved as lost at the next start, or by
        another process from its journal)."""
        await self._steps_saved()  # the turn's save comes after its steps'
        saved: Answer | None = None
        for attempt in (answer, None):
            try:
                saved = await self._save_answer(attempt or ending.failed_answer(self))
                break
            except Exception:
                logger.exception("could not save answer trace_id=%s turn=%s", self.trace_id, self.turn_id)
        try:
            ended = saved or answer
            tokens = ended.tokens_out or self.completion.deltas  # of every model call
            telemetry.stream_ended(self, ended, self.figures.time_per_output_token(tokens), saved is not None)
        except Exception:
            logger.exception("could not measure answer trace_id=%s", self.trace_id)
        return saved
