"""The upstream event-stream parser, without Django or a network."""

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.exceptions import UpstreamEventTooLarge
from conversations.providers.sse_parser import SSEParser, parse_block


def parse(*chunks: bytes) -> list[tuple[bytes, bytes]]:
    parser = SSEParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_openai_events():
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    assert parse(stream) == [(b"message", b'{"a":1}'), (b"message", b'{"b":2}'), (b"message", b"[DONE]")]


def test_incomplete_event_waits_for_its_blank_line():
    parser = SSEParser()
    assert parser.feed(b"data: 1\n") == []
    assert parser.feed(b"\n") == [(b"message", b"1")]


def test_line_endings_cr_lf_crlf_and_a_split_crlf():
    assert parse(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n") == [
        (b"message", b"a"),
        (b"message", b"b"),
        (b"message", b"c"),
    ]
    assert parse(b"data: a\r", b"\n\r", b"\n") == [(b"message", b"a")]


def test_fields_comments_and_multiline_data():
    block = b": keep-alive\nevent: error\ndata:first\ndata:  second\nid: 7\nretry: 10\nunknown"
    assert parse_block(block) == (b"error", b"first\n second")
    assert parse_block(b": only a comment") is None
    assert parse_block(b"data") == (b"message", b"")


def test_bom_is_dropped_once():
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [(b"message", b"x")]


def test_multibyte_text_split_across_reads():
    raw = 'data: {"t":"héllo 😀"}\n\n'.encode()
    assert parse(raw[:9], raw[9:12], raw[12:]) == [(b"message", '{"t":"héllo 😀"}'.encode())]


texts = st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20), max_size=8)


@given(texts=texts, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_events_do_not_depend_on_how_the_stream_was_cut(texts, cuts):
    stream = b"".join(b"data: " + json.dumps({"t": t}).encode() + b"\r\n\r\n" for t in texts)
    points = sorted({c for c in cuts if c < len(stream)})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    events = parse(*pieces)
    assert [json.loads(data)["t"] for _, data in events] == texts


def test_an_event_longer_than_the_limit_is_refused_however_it_is_cut():
    event = b"data: " + b"x" * 1000 + b"\n\n"
    for read in (7, 100, len(event)):
        parser = SSEParser(max_event_bytes=500)
        with pytest.raises(UpstreamEventTooLarge):
            for start in range(0, len(event), read):
                parser.feed(event[start : start + read])
    assert parse_block(event[:-2]) == (b"message", b"x" * 1000)
    assert SSEParser(max_event_bytes=1006).feed(event) == [(b"message", b"x" * 1000)]  # the limit itself is fine


def test_a_blank_line_across_two_reads_ends_the_event():
    assert parse(b"data: a\n", b"\ndata: b", b"\n", b"\n") == [(b"message", b"a"), (b"message", b"b")]


def seconds_to_parse(size: int, read: int = 1024) -> float:
    """The best of five: one event of `size` bytes, fed `read` bytes at a
    time. The thread's own CPU time, not the clock: on a busy machine (other
    test processes, an xdist worker beside this one) the clock counts the
    time the parser waited for a core."""
    event = b"data: " + b"x" * size + b"\n\n"
    reads = [event[start : start + read] for start in range(0, len(event), read)]
    best = float("inf")
    for _ in range(5):
        parser, started = SSEParser(), time.thread_time()
        events = [event for chunk in reads for event in parser.feed(chunk)]
        best = min(best, time.thread_time() - started)
        assert events == [(b"message", b"x" * size)]
    return best


def test_one_large_event_in_many_reads_is_parsed_in_linear_time():
    # 4x the bytes: 4x the time if linear, 16x if each read copies the
    # event so far. 8x leaves room for a noisy machine.
    small, large = seconds_to_parse(1_000_000), seconds_to_parse(4_000_000)
    assert large < 8 * small, f"1 MB: {small * 1000:.1f} ms, 4 MB: {large * 1000:.1f} ms"
