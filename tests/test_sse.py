"""The wire encoders, without Django."""

import json

from conversations.wire import events as sse

from .helpers import events_of


def test_event_has_name_id_and_json_data():
    raw = sse.encode_sse("start", {"turn_id": "t"}, id=0).decode()
    assert raw == 'event: start\nid: 0\ndata: {"turn_id":"t"}\n\n'


def test_delta_fast_path_matches_the_general_encoder():
    text = 'line one\nline "two"\r\n data: 🎉 \u2028 </script>'
    assert sse.encode_sse_delta(text, 42) == sse.encode_sse("delta", {"text": text}, id=42)


def test_hostile_text_never_breaks_framing():
    text = "a\n\nevent: error\ndata: {}\n\nid: 9\r\r\n: comment 😀"
    events = events_of(sse.encode_sse_delta(text, 7))
    assert events == [{"event": "delta", "id": "7", "data": {"text": text}}]


def test_newlines_are_stripped_from_event_and_id():
    raw = sse.encode_sse("evil\nevent: x", {}, id="1\n2").decode()
    assert raw.splitlines()[:2] == ["event: evilevent: x", "id: 12"]


def test_ndjson_is_one_line_with_type_and_id():
    line = sse.encode_ndjson("done", {"finish_reason": "stop"}, id=5)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert json.loads(line) == {"type": "done", "id": 5, "finish_reason": "stop"}


def test_ndjson_delta_matches_the_general_encoder():
    text = "x\ny \u2028 😀"
    assert json.loads(sse.encode_ndjson_delta(text, 3)) == json.loads(sse.encode_ndjson("delta", {"text": text}, id=3))


def test_the_openai_doors_opening_is_no_event_to_the_openai_sdk():
    """chatstream's own SSE opens with `retry:`; the official SDK's decoder
    makes an event of a `retry:` alone, and its stream fails parsing that
    event's empty data. The OpenAI door opens with a comment alone."""
    from openai._streaming import SSEDecoder

    from conversations.wire.openai_chunks import ChunkWire

    assert [e.data for e in SSEDecoder().iter_bytes(iter([sse.SSE_OPENING]))] == [""]
    wire = ChunkWire("t", "m", include_usage=False)
    chunk = wire.encode(("delta", "Hi", 2))
    decoded = list(SSEDecoder().iter_bytes(iter([wire.opening, chunk])))
    assert [(e.id, json.loads(e.data)["choices"][0]["delta"]) for e in decoded] == [("2", {"content": "Hi"})]


def test_tool_results_and_steps_are_json_objects_on_either_wire():
    result = '{"id":"c1","name":"add","output":"5","duration_ms":3}'
    assert events_of(sse.SSE.encode(("tool_result", result, 60))) == [
        {"event": "tool_result", "id": "60", "data": json.loads(result)}
    ]
    assert json.loads(sse.NDJSON.encode(("step", '{"n":2}', 67))) == {"type": "step", "id": 67, "step": {"n": 2}}
    assert json.loads(sse.NDJSON.encode(("tool_result", result, 60)))["tool_result"]["output"] == "5"


def test_the_openai_door_skips_tool_results_and_steps():
    from conversations.wire.openai_chunks import ChunkWire

    wire = ChunkWire("t", "m", include_usage=False)
    assert wire.encode(("tool_result", '{"id":"c1"}', 9)) == wire.encode(("step", '{"n":2}', 16)) == b""
