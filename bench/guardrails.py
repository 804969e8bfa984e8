"""`python -m bench.guardrails [--hooks]`: what one delta costs the relay (taken from
the model's read, screened, appended for the readers, SSE-encoded) with no
guardrail, with the built-in redaction, and with an operator's on_output
hook (async, and sync on a thread). In-process, no server: the per-token
cost the guardrails add, and that with none configured it stays as it was.
Prints µs per delta, the median of REPEATS runs of DELTAS deltas each."""

import asyncio
import os
import statistics
import sys
import time
import uuid

DELTAS, REPEATS = 20_000, 7
THREADED_DELTAS = 2_000  # a thread hop per piece is ~100x dearer: fewer of them


class AsyncNoop:
    async def on_output(self, kind, text):
        return None


class SyncNoop:
    def on_output(self, kind, text):
        return None


def relay_for():
    from conversations.providers import Provider
    from conversations.stream.answer import PreparedTurn
    from conversations.stream.relay import AnswerRelay

    try:  # answering gives the relay its guard; before guardrails, the relay made its own redactor
        from conversations.guardrails.output import output_guard

        more = {"guard": output_guard("bench")}
    except ImportError:
        more = {}

    prepared = PreparedTurn(
        conversation_id=uuid.uuid4(),
        owner_id=1,
        user_turn_id=uuid.uuid4(),
        answer_turn_id=uuid.uuid4(),
        answer_position=1,
        messages=[],
    )

    async def save(answer):
        return answer

    provider = Provider(model="m")
    return AnswerRelay(prepared=prepared, provider=provider, trace_id="bench", received_at=0.0, save=save, **more)


async def per_delta(deltas: int) -> float:
    from conversations.providers import TEXT
    from conversations.wire.events import encode_sse_delta

    relay, pieces = relay_for(), [(TEXT, "tok ")]
    guard = getattr(relay, "_guard", None)
    started = time.perf_counter()
    for _ in range(deltas):  # as _take_tokens does for each read
        if guard is None:
            relay._relay_pieces(pieces)
        else:
            await relay._relay_screened(pieces)
        encode_sse_delta("tok ", relay.length)
    return (time.perf_counter() - started) / deltas * 1e6


def measure(label: str, deltas: int = DELTAS, **settings) -> None:
    from django.test import override_settings

    with override_settings(**settings):
        runs = [asyncio.run(per_delta(deltas)) for _ in range(REPEATS)]
    print(f"{label:<42} {statistics.median(runs):7.2f} µs/delta  (min {min(runs):.2f}, max {max(runs):.2f})")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatstream.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    import django

    django.setup()
    import logging

    logging.disable(logging.INFO)  # the first-token log line is not the relay's per-delta cost
    measure("no guardrail", CHATSTREAM_REDACT=False, CHATSTREAM_GUARDRAILS=[])
    measure("CHATSTREAM_REDACT (built-in)", CHATSTREAM_REDACT=True, CHATSTREAM_GUARDRAILS=[])
    if "--hooks" in sys.argv:  # (the first two alone also run on the code from before guardrails)
        measure("async on_output hook (no-op)", CHATSTREAM_GUARDRAILS=["bench.guardrails.AsyncNoop"])
        measure(
            "sync on_output hook (no-op, on a thread)",
            THREADED_DELTAS,
            CHATSTREAM_GUARDRAILS=["bench.guardrails.SyncNoop"],
        )


if __name__ == "__main__":
    main()
