"""Output faster than a frame reaches readers about once a frame, together;
the first output, and output slower than a frame, at once."""

import asyncio
import time

import pytest

from conversations.stream.events import DELTA, START
from conversations.stream.readers import MAX_FRAME_CHARS, Readers
from harness.fake_upstream import Behaviour

from .helpers import post_and_read, saved_answer, text_of


async def produce_and_follow(readers: Readers, pieces: list[str], pace: float) -> list[tuple[float, str]]:
    """Append `pieces`, `pace` seconds apart, then end; what one reader got, and when."""
    received: list[tuple[float, str]] = []

    async def follow() -> None:
        async for kind, data, _ in readers.follow(heartbeat=None):
            if kind == DELTA:
                received.append((time.monotonic(), data))
            elif kind != START:
                return

    reader = asyncio.create_task(follow())
    await asyncio.sleep(0)
    for piece in pieces:
        readers.append(piece)
        await asyncio.sleep(pace)
    readers.end(("done", {}, readers.length))
    await reader
    return received


def readers(frame: float) -> Readers:
    return Readers(start=(START, {}, 0), on_attach=lambda: None, frame=frame)


def test_output_faster_than_a_frame_goes_out_once_a_frame_and_whole():
    pieces = [f"t{i} " for i in range(100)]
    started = time.monotonic()
    received = asyncio.run(produce_and_follow(readers(frame=0.05), pieces, pace=0.002))
    # The first piece at once, alone; then one event a frame, with everything since.
    assert received[0][1] == "t0 " and received[0][0] - started < 0.04
    assert "".join(text for _, text in received) == "".join(pieces)
    assert 2 < len(received) <= (time.monotonic() - started) / 0.05 + 2
    gaps = [b[0] - a[0] for a, b in zip(received, received[1:-1], strict=False)]
    assert all(gap >= 0.049 for gap in gaps), gaps  # timers may fire up to a millisecond early


def test_output_slower_than_a_frame_is_never_held():
    pieces = [f"t{i} " for i in range(5)]
    received = asyncio.run(produce_and_follow(readers(frame=0.05), pieces, pace=0.15))
    assert [text for _, text in received] == pieces  # one event a piece


def test_output_waiting_for_the_frame_goes_out_with_the_final_event():
    async def run() -> tuple[list, list]:
        follower, received = readers(frame=10.0), []

        async def follow() -> None:
            async for kind, data, _ in follower.follow(heartbeat=None):
                received.append((kind, data))

        reader = asyncio.create_task(follow())
        follower.append("a")
        await asyncio.sleep(0.02)
        follower.append("b")  # within the frame: waits for its end
        await asyncio.sleep(0.02)
        before_the_end = list(received)
        follower.end(("done", {}, 2))
        await reader
        return before_the_end, received

    before_the_end, received = asyncio.run(run())
    assert before_the_end == [(START, {}), (DELTA, "a")]
    assert received == [(START, {}), (DELTA, "a"), (DELTA, "b"), ("done", {})]


@pytest.mark.parametrize("frame", [1 / 60, 0.05])
def test_a_fast_model_reaches_the_client_about_once_a_frame_and_whole(alice, upstream, settings, frame):
    settings.CHATSTREAM_FRAME_SECONDS = frame
    upstream.behaviour = Behaviour(tokens=600, pace=0.001, first_token_delay=0.05)
    started = time.monotonic()
    conversation_id, events, _ = post_and_read(alice)
    seconds = time.monotonic() - started
    deltas = [event for event in events if event["event"] == "delta"]
    expected = "".join(f"t{i} " for i in range(600))
    assert text_of(events) == saved_answer(conversation_id).content == expected
    # About one event a frame, never one a token.
    assert len(deltas) <= seconds / frame + 2, (len(deltas), seconds)
    assert events[-1]["data"]["usage"]["tokens_out"] == 600


def test_a_model_slower_than_a_frame_is_relayed_token_by_token(alice, upstream):
    upstream.behaviour = Behaviour(tokens=12, pace=0.04)
    _, events, _ = post_and_read(alice)
    assert [event["data"]["text"] for event in events if event["event"] == "delta"] == [f"t{i} " for i in range(12)]


def test_a_burst_past_the_frame_limit_goes_out_at_once():
    async def run() -> list[str]:
        follower, received = readers(frame=10.0), []

        async def follow() -> None:
            async for kind, data, _ in follower.follow(heartbeat=None):
                if kind == DELTA:
                    received.append(data)

        reader = asyncio.create_task(follow())
        follower.append("a")
        await asyncio.sleep(0.01)
        follower.append("b" * MAX_FRAME_CHARS)  # within the frame, but too much to hold
        await asyncio.sleep(0.01)
        taken = list(received)
        follower.end(("done", {}, follower.length))
        await reader
        return taken

    assert asyncio.run(run()) == ["a", "b" * MAX_FRAME_CHARS]
