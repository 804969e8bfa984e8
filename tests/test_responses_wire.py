"""The Responses wire without Django or a server: the events an answer's
events make, as the official SDK's accumulator reads them."""

import uuid

import orjson
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from conversations.stream.events import DELTA, DONE, ERROR, HEARTBEAT, REASONING, REFUSAL, START, TOOL_CALL
from conversations.wire.events import SSE_HEARTBEAT
from conversations.wire.openai_responses import ResponseState, ResponseWire, response_usage

from .helpers import events_of

TURN = uuid.UUID(int=7)
USAGE = {"tokens_in": 5, "tokens_out": 9, "tokens_cached": 2, "tokens_reasoning": 3, "source": "reported"}
CALL = orjson.dumps({"id": "call_1", "name": "get_time", "arguments": '{"zone": "CET"}'}).decode()


SDK_EVENT = TypeAdapter(ResponseStreamEvent)


def _events(answer: list) -> list[dict]:
    """The events an answer makes, each one checked against the SDK's own
    type of it (strictly: the SDK itself builds them unchecked)."""
    state = ResponseState(TURN, "m", 0, {})
    events = [*state.opening(), *(event for item in answer for event in state.take(item))]
    for event in events:
        SDK_EVENT.validate_python(event)
    return events


def _sdk_final(events: list[dict]):
    """The response the SDK's own stream helper makes of the events."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(SDK_EVENT.validate_python(event))
    return state._completed_response


def test_reasoning_text_a_refusal_and_a_call_are_items_in_their_order():
    answer = [
        (START, {}, 0),
        (REASONING, "Hm", 2),
        (DELTA, "Hi ", 5),
        (DELTA, "there", 10),
        (REFUSAL, "No.", 13),
        (TOOL_CALL, CALL, 60),
        (DONE, {"finish_reason": "tool_calls", "usage": USAGE}, 60),
    ]
    events = _events(answer)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = _sdk_final(events)
    reasoning, message, call = final.output
    assert reasoning.content[0].text == "Hm" and final.output_text == "Hi there"
    assert [part.type for part in message.content] == ["output_text", "refusal"] and message.content[1].refusal == "No."
    assert (call.call_id, call.arguments, call.status) == ("call_1", '{"zone": "CET"}', "completed")
    added = next(e for e in events if e["type"] == "response.output_item.added" and e["output_index"] == 2)
    assert added["item"]["arguments"] == ""  # the deltas add the arguments once
    assert final.usage.input_tokens_details.cached_tokens == 2 and final.usage.total_tokens == 14


def test_endings_other_than_stop_are_incomplete_or_failed():
    for reason, why in (("length", "max_output_tokens"), ("client_disconnected", None)):
        ending = _events([(DELTA, "Hi", 2), (DONE, {"finish_reason": reason, "usage": USAGE}, 2)])[-1]
        assert ending["type"] == "response.incomplete"
        assert ending["response"]["incomplete_details"] == {"reason": why}
        assert ending["response"]["chatstream_finish_reason"] == reason
        assert ending["response"]["output"][0]["status"] == "incomplete"
    failed = _events([(ERROR, {"code": "upstream_error", "message": "Boom", "finish_reason": "error"}, 0)])[-1]
    assert failed["type"] == "response.failed" and "error" not in failed  # the SDK raises on a top-level error
    assert failed["response"]["error"] == {"code": "server_error", "message": "Boom", "type": "upstream_error"}


def test_the_wire_opens_with_the_response_and_writes_each_event_as_sse():
    wire = ResponseWire(ResponseState(TURN, "m", 0, {"metadata": {"k": "v"}}))
    opened = events_of(wire.opening)
    assert [e["event"] for e in opened] == ["response.created", "response.in_progress"]
    assert opened[0]["data"]["response"]["id"] == f"resp_{TURN.hex}"
    assert opened[0]["data"]["response"]["metadata"] == {"k": "v"}
    assert wire.encode((HEARTBEAT, None, 0)) == SSE_HEARTBEAT
    assert [e["event"] for e in events_of(wire.encode((DELTA, "Hi", 2)))] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]


def test_estimated_usage_is_marked_as_the_chat_door_marks_it():
    assert response_usage(1, 2, None, None, True)["chatstream_estimated"] is True
    assert "chatstream_estimated" not in response_usage(1, 2, None, None, False)
