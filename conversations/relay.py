"""The life of one answer: the model call runs in its own task, the response
reads from it, and the task alone saves the turn when the stream ends.

    view ──start()──▶ generation task ──provider.stream()──▶ upstream
      ▲                    │ appends text, wakes the reader
      └──── follow() ◀─────┘ (coalesces whatever is pending into one delta)

Whatever ends the stream (finish, error, timeout, cancel, client gone), the
task records why, saves the turn once under `asyncio.shield`, and only then
lets the reader send the final event. See ARCHITECTURE.md.
"""

import asyncio
import logging
import time
import uuid
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any

from . import background, registry, retries, services, shutdown, telemetry
from .answer_text import AnswerText
from .conf import conf
from .db import run_db
from .exceptions import ServerShutdown, UpstreamError, UpstreamTimeout
from .models import Turn
from .providers import Completion, Provider
from .providers.base import estimate_tokens
from .redaction import Redactor
from .watchdog import Watchdog

logger = logging.getLogger(__name__)

START, DELTA, HEARTBEAT, DONE, ERROR = "start", "delta", "heartbeat", "done", "error"
FinishReason = Turn.FinishReason

# Text the model produced that the reader has not taken yet. Past this the
# task stops reading the upstream (TCP pushes back on the model server), so a
# stalled client cannot make the process buffer without bound.
MAX_BACKLOG_CHARS = 256 * 1024

# An answer's timeline keeps the waits of its first this many pieces (2 bytes each).
MAX_TIMELINE_PIECES = 16384


class AnswerRelay:
    def __init__(self, *, prepared: services.PreparedTurn, provider: Provider, trace_id: str, received_at: float):
        self.prepared = prepared
        self.provider = provider
        self.trace_id = trace_id
        self.received_at = received_at  # time.monotonic() when the request arrived
        self.completion = Completion(model=provider.model)
        self.text = AnswerText()
        self.finish_reason: str = ""
        self.error: UpstreamError | ServerShutdown | None = None
        self.answer: services.Answer | None = None
        self.attempts: list[dict[str, str]] = []  # failed model calls, for the turn
        # CHATSTREAM_REDACT: masks e-mail addresses, phone and card numbers as
        # they stream; the turn is saved with the same text the client saw.
        self._redactor = Redactor() if conf.CHATSTREAM_REDACT else None
        self._delivered = 0  # characters the reader has taken
        self._first_token_at: float | None = None
        self._last_token_at: float | None = None
        self._gaps = array("H")  # ms waited for each piece of text: the turn's timeline
        self._running = False  # the task has taken its first step
        self._stop_requested = False  # the first reason given is the one saved
        self._saving = False
        self._ended = False
        self._cancel_reason: str = FinishReason.CLIENT_DISCONNECTED
        self._interrupted = False  # by the process stopping
        self._cancelled_at: float | None = None  # time.monotonic() of the cancel
        self._upstream_closed_at: float | None = None
        self._deltas_at_cancel = 0
        self._waiting: list[asyncio.Future] = []  # readers waiting for news
        self._followers = 0
        self._grace: asyncio.TimerHandle | None = None  # `continue` mode: the wait for a reader to come back
        self._producer_waiter: asyncio.Future | None = None
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
        return self.text.length

    # --- control --------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"answer {self.prepared.answer_turn_id}")
        background.keep(self._task)
        registry.add(self)
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
        self._cancelled_at, self._deltas_at_cancel = time.monotonic(), self.completion.deltas
        # A task cancelled before its first step never runs its body, and so
        # would save nothing: that one starts, sees the request and stops.
        if self._running:
            self._task.cancel()

    def release(self) -> None:
        """A reader is gone. If it was the last and the answer is still being
        generated, CHATSTREAM_ON_DISCONNECT decides: `cancel` stops the model
        call at once; `continue` lets it run for CHATSTREAM_RESUME_GRACE_SECONDS
        so the client can come back (GET /api/turns/<id>/events), and cancels
        it if nobody has."""
        if self._followers or self._saving or self._grace is not None:
            return
        if shutdown.draining():  # the server is dropping its connections, not the client
            self.interrupt()
            return
        if conf.CHATSTREAM_ON_DISCONNECT == "continue" and self._task is not None and not self._task.done():
            self._grace = self._loop.call_later(conf.CHATSTREAM_RESUME_GRACE_SECONDS, self._grace_over)
        else:
            self.cancel(FinishReason.CLIENT_DISCONNECTED)

    def release_threadsafe(self) -> None:
        """`release` from another thread (Django may close responses on one)."""
        self._loop.call_soon_threadsafe(self.release)

    async def close(self) -> None:
        """Called when a response ends for any reason: releases the answer,
        and if that stopped it, waits until the turn is saved (shielded, so a
        second cancellation cannot abandon the save)."""
        self.release()
        if not self._followers and self._grace is None:
            await self.wait_saved()

    def _grace_over(self) -> None:
        self._grace = None
        if not self._followers:
            self.cancel(FinishReason.CANCELLED)

    # --- the generation task --------------------------------------------------

    async def _run(self) -> None:
        self._running = True
        try:
            if self._stop_requested:
                raise asyncio.CancelledError
            await self._call_model()
        except asyncio.CancelledError:
            # Not re-raised: this task's whole job is to save the turn, and
            # finishing normally is how it says the turn is saved.
            self.finish_reason = self._cancel_reason
            if self._interrupted:
                self.error = ServerShutdown("The server was restarted before the answer ended; send it again.")
        except UpstreamError as exc:
            self.finish_reason, self.error = FinishReason.ERROR, exc
        except Exception as exc:
            logger.exception("answer failed trace_id=%s", self.trace_id)
            self.finish_reason, self.error = FinishReason.ERROR, UpstreamError(f"Internal error: {exc!r}")
        else:
            self.finish_reason = self.completion.finish_reason or FinishReason.STOP
        if self._redactor is not None and (held := self._redactor.finish()):
            self.text.append(held)  # what it held back, however the stream ended
        self._saving = True
        try:
            await asyncio.shield(self._save())
        finally:
            self._ended = True
            registry.remove(self)
            self._wake_readers()

    async def _call_model(self) -> None:
        """The model call, tried again and then with each fallback model while
        no token has come (retries.py); every failed try is recorded."""
        models = [self.provider.model, *conf.LLM_FALLBACK_MODELS]
        for index, model in enumerate(models):
            try:
                async for attempt in retries.retrying(before_text=lambda: self._first_token_at is None):
                    with attempt:
                        await self._try_model(model)
                return
            except UpstreamError:
                if self._first_token_at is not None or index == len(models) - 1:
                    raise
                logger.warning("falling back trace_id=%s from=%s to=%s", self.trace_id, model, models[index + 1])

    async def _try_model(self, model: str) -> None:
        self.completion = Completion(model=model)
        self._upstream_closed_at = None
        try:
            await self._relay_tokens()
        except UpstreamError as exc:
            self.attempts.append({"model": model, "code": exc.code, "message": str(exc)[:500]})
            telemetry.model_call_failed(self, model, exc)
            raise

    async def _relay_tokens(self) -> None:
        stream = self.provider.stream(self.prepared.messages, self.completion)
        try:
            async with aclosing(stream), asyncio.timeout(None) as deadline:
                silence = Watchdog(conf.LLM_FIRST_TOKEN_TIMEOUT, lambda: self._model_silent(deadline))
                try:
                    await self._take_tokens(stream, silence)
                finally:
                    silence.cancel()
        except TimeoutError as exc:
            if self._first_token_at is None:
                raise UpstreamTimeout(f"No first token within {conf.LLM_FIRST_TOKEN_TIMEOUT:g} s.") from exc
            raise UpstreamTimeout(f"The model was silent for more than {conf.LLM_IDLE_TIMEOUT:g} s.") from exc
        finally:
            # aclosing has closed the provider's stream: for a cancel, this is
            # when the upstream learned of it.
            self._upstream_closed_at = time.monotonic()

    async def _take_tokens(self, stream: AsyncIterator[str], silence: Watchdog) -> None:
        async for text in stream:
            now = time.monotonic()
            if self._first_token_at is None:
                self._first_token_at = now
                silence.restart(conf.LLM_IDLE_TIMEOUT)
                telemetry.first_token(self, now - self.received_at)
            self._note_arrival(now)
            if "\x00" in text:  # a text column cannot hold NUL (PostgreSQL); client and turn get the same
                text = text.replace("\x00", "\ufffd")
            silence.touch()
            if self._redactor is not None:
                text = self._redactor.feed(text)
            if text:
                self.text.append(text)
                self._wake_readers()
            if self.length - self._delivered > MAX_BACKLOG_CHARS:
                await self._wait_for_reader()
                silence.touch()

    def _note_arrival(self, now: float) -> None:
        """The wait for this piece of text, for the turn's timeline (ms, two
        bytes each; the first is the time to first token)."""
        if len(self._gaps) < MAX_TIMELINE_PIECES:
            self._gaps.append(min(65535, round((now - (self._last_token_at or self.received_at)) * 1000)))
        self._last_token_at = now

    def _model_silent(self, deadline: asyncio.Timeout) -> None:
        # Waiting on our own reader is not the model's silence.
        if self._producer_waiter is None:
            deadline.reschedule(self._loop.time())  # expires now: TimeoutError in _relay_tokens

    async def _save(self) -> None:
        self.answer = self._answer()
        saved = True
        try:
            await run_db(services.record_answer, prepared=self.prepared, answer=self.answer)
        except Exception:
            logger.exception("could not save answer trace_id=%s turn=%s", self.trace_id, self.prepared.answer_turn_id)
            saved = False
        telemetry.stream_ended(self, self.answer, self._time_per_output_token(), saved)

    def _time_per_output_token(self) -> float | None:
        """Mean seconds between tokens after the first (needs two or more)."""
        tokens = self.completion.tokens_out or self.completion.deltas
        if self._first_token_at is None or self._last_token_at is None or tokens < 2:
            return None
        return (self._last_token_at - self._first_token_at) / (tokens - 1)

    def _answer(self) -> services.Answer:
        ended_at = time.monotonic()
        completion = self.completion
        content = str(self.text)
        estimated = completion.tokens_out is None or completion.tokens_in is None
        return services.Answer(
            content=content,
            finish_reason=self.finish_reason,
            model=completion.model,
            provider=self.provider.name,
            trace_id=self.trace_id,
            ttft_ms=_ms(self._first_token_at - self.received_at) if self._first_token_at else None,
            duration_ms=_ms(ended_at - self.received_at),
            tokens_out=completion.tokens_out if completion.tokens_out is not None else completion.deltas,
            tokens_in=(
                completion.tokens_in
                if completion.tokens_in is not None
                else sum(estimate_tokens(m["content"]) for m in self.prepared.messages)
            ),
            tokens_estimated=estimated,
            malformed_chunks=completion.malformed_chunks,
            cancel_latency_ms=self._cancel_latency_ms(),
            tokens_after_cancel=completion.deltas - self._deltas_at_cancel if self._cancelled_at else None,
            error_code=self.error.code if self.error else "",
            error_detail=str(self.error) if self.error else "",
            attempts=self.attempts,
            token_gaps=self._gaps.tobytes(),
        )

    def _cancel_latency_ms(self) -> float | None:
        if self._cancelled_at is None or self._upstream_closed_at is None:
            return None  # not cancelled, or cancelled before the model was called
        return round((self._upstream_closed_at - self._cancelled_at) * 1000, 3)

    async def stop(self) -> None:
        """Cancel (a Stop from any tab) and wait until the turn is saved."""
        self.cancel(FinishReason.CANCELLED)
        await self.wait_saved()

    async def wait_saved(self) -> None:
        """Until the turn is saved (for a cancel request to report on it)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    # --- the reader -----------------------------------------------------------

    async def follow(
        self, heartbeat: float | None, after: int = 0, *, reader: bool = True
    ) -> AsyncGenerator[tuple[str, Any, int], None]:
        """(kind, data, id) for a response to encode: `start` (for a reader
        from the beginning), then deltas that carry everything produced since
        the last one (or since character `after`, for a reader resuming),
        heartbeats after `heartbeat` seconds of silence (none if None), and
        `done` or `error` once saved. Several readers may follow one answer.
        A follower that is not a client's `reader` (the Redis journal's
        publisher) does not keep the answer alive."""
        if not after:
            yield START, self.start_data(), 0
        beat_due = False

        def beat() -> None:
            nonlocal beat_due
            beat_due = True
            self._wake_readers()

        quiet = Watchdog(heartbeat, beat) if heartbeat is not None else None
        sent = min(after, self.length)
        if reader:
            self.attach()
        try:
            while True:
                if sent < self.length:
                    text = self.text.since(sent)
                    sent = self.length
                    self._delivered = max(self._delivered, sent)
                    self._wake_producer()
                    if quiet is not None:
                        quiet.touch()
                    yield DELTA, text, sent
                elif self._ended:
                    yield self._final_event()
                    return
                elif beat_due:
                    beat_due = False
                    yield HEARTBEAT, None, self.length
                else:
                    await self._wait_for_producer()
        finally:
            if reader:
                self._followers -= 1
            if quiet is not None:
                quiet.cancel()

    def attach(self) -> None:
        """One more reader (here, or in another process through Redis)."""
        self._followers += 1
        if self._grace is not None:  # a reader came back in time
            self._grace.cancel()
            self._grace = None

    def detach(self) -> None:
        """A reader in another process has gone (`release` follows)."""
        self._followers = max(0, self._followers - 1)

    def start_data(self) -> dict[str, Any]:
        return {
            "turn_id": str(self.prepared.answer_turn_id),
            "conversation_id": str(self.prepared.conversation_id),
            "trace_id": self.trace_id,
            "model": self.provider.model,
        }

    def _final_event(self) -> tuple[str, dict[str, Any], int]:
        assert self.answer is not None
        return final_event(self.answer, self.length)

    # --- hand-over between the two sides ---------------------------------------

    async def _wait_for_producer(self) -> None:
        """Wait for text, the end, or a heartbeat that is due. Each reader
        waits on a future of its own, so cancelling one touches no other."""
        waiter = self._loop.create_future()
        self._waiting.append(waiter)
        await waiter

    async def _wait_for_reader(self) -> None:
        self._producer_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._producer_waiter
        finally:
            self._producer_waiter = None

    def _wake_readers(self) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():  # a cancelled reader's
                waiter.set_result(None)

    def _wake_producer(self) -> None:
        if self._producer_waiter is not None and not self._producer_waiter.done():
            self._producer_waiter.set_result(None)


def final_event(answer: Any, length: int) -> tuple[str, dict[str, Any], int]:
    """The `done` or `error` event for a saved answer: a services.Answer, or
    a Turn read back from the database (they share these fields)."""
    if answer.finish_reason == FinishReason.ERROR:
        data = {"code": answer.error_code, "message": answer.error_detail, "finish_reason": FinishReason.ERROR}
        return ERROR, data, length
    usage = {"tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out, "estimated": answer.tokens_estimated}
    data = {
        "finish_reason": answer.finish_reason,
        "usage": usage,
        "ttft_ms": answer.ttft_ms,
        "duration_ms": answer.duration_ms,
    }
    return DONE, data, length


def saved_rest(turn: Any, after: int) -> Iterator[tuple[str, Any, int]]:
    """What a reader that has character `after` of a saved answer still
    needs: the rest of its text, then its final event."""
    length = len(turn.content)
    if after < length:
        yield DELTA, turn.content[after:], length
    yield final_event(turn, length)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
