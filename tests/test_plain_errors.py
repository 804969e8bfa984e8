"""Each kind of upstream failure gives the client and the saved turn a plain
sentence; the log line (a warning, with the trace id) keeps the detail."""

import logging

import pytest

from harness.fake_upstream import Behaviour

from .helpers import post_and_read, saved_answer


def failed_call_logged(caplog, trace_id: str) -> logging.LogRecord:
    records = [record for record in caplog.records if record.getMessage() == "stream.model_call_failed"]
    assert records, "no stream.model_call_failed line"
    record = records[-1]
    assert record.levelno == logging.WARNING and record.trace_id == trace_id  # type: ignore[attr-defined]
    return record


@pytest.mark.parametrize(
    ("behaviour", "code", "message", "in_the_log"),
    [
        (
            Behaviour(tokens=10, cut_after=4),
            "upstream_incomplete",
            "The model server closed the stream before the answer ended.",
            "ClientPayloadError(",
        ),
        (
            Behaviour(tokens=3, finish_reason=None),
            "upstream_incomplete",
            "The model server ended the stream before the answer was finished.",
            "without a finish_reason",
        ),
        (
            Behaviour(tokens=3, malformed_at=(0, 1, 2), finish_reason=None),  # unreadable chunks, then no end
            "upstream_incomplete",
            "The model server ended the stream before the answer was finished.",
            "(3 unreadable chunks skipped)",
        ),
        (
            Behaviour(status=500),
            "upstream_status",
            "The model server answered 500: fake failure 500",
            '"server_error"',
        ),
        (
            Behaviour(content_type="text/plain"),
            "upstream_protocol",
            "The model server did not answer with an event stream.",
            "text/plain",
        ),
    ],
    ids=["cut", "no-finish-reason", "malformed", "status-with-message", "content-type"],
)
def test_upstream_failures_read_plainly(alice, upstream, caplog, behaviour, code, message, in_the_log):
    upstream.behaviour = behaviour
    caplog.set_level(logging.WARNING, logger="conversations")
    conversation_id, events, _ = post_and_read(alice)
    error = events[-1]["data"]
    assert (events[-1]["event"], error["code"], error["message"]) == ("error", code, message)
    turn = saved_answer(conversation_id)
    assert (turn.error_code, turn.error_detail) == (code, message)
    record = failed_call_logged(caplog, turn.trace_id)
    assert in_the_log in record.detail and record.error == message  # type: ignore[attr-defined]


def test_a_status_without_a_message_of_its_own_names_only_the_status(alice, upstream, caplog):
    # A proxy's HTML page in front of the model server: never shown to the client.
    upstream.behaviour = Behaviour(status=502, error_page="<html>nginx/1.25 upstream reset</html>")
    caplog.set_level(logging.WARNING, logger="conversations")
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["data"]["message"] == "The model server answered 502."
    turn = saved_answer(conversation_id)
    assert turn.error_detail == "The model server answered 502."
    assert "nginx/1.25" in failed_call_logged(caplog, turn.trace_id).detail  # type: ignore[attr-defined]


def test_an_unreachable_server(alice, upstream, caplog, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    caplog.set_level(logging.WARNING, logger="conversations")
    conversation_id, events, _ = post_and_read(alice)
    assert events[-1]["data"]["message"] == "The model server could not be reached."
    turn = saved_answer(conversation_id)
    assert turn.error_detail == "The model server could not be reached."
    detail = failed_call_logged(caplog, turn.trace_id).detail  # type: ignore[attr-defined]
    assert "127.0.0.1:9" in detail and "ClientConnectorError" in detail


@pytest.mark.parametrize(
    ("behaviour", "timeout", "message"),
    [
        (Behaviour(first_token_delay=5), "LLM_FIRST_TOKEN_TIMEOUT", "The model did not start answering in time."),
        (Behaviour(pace=5, tokens=3), "LLM_IDLE_TIMEOUT", "The model stopped answering partway through."),
    ],
    ids=["first-token", "idle"],
)
def test_timeouts_read_plainly(alice, upstream, caplog, settings, behaviour, timeout, message):
    setattr(settings, timeout, 0.2)
    upstream.behaviour = behaviour
    caplog.set_level(logging.WARNING, logger="conversations")
    conversation_id, events, _ = post_and_read(alice)
    assert (events[-1]["data"]["code"], events[-1]["data"]["message"]) == ("upstream_timeout", message)
    turn = saved_answer(conversation_id)
    assert turn.error_detail == message
    assert timeout in failed_call_logged(caplog, turn.trace_id).detail  # type: ignore[attr-defined]


def test_an_event_too_large_to_read(alice, upstream, caplog, settings):
    settings.LLM_MAX_EVENT_BYTES = 64 * 1024
    upstream.behaviour = Behaviour(tokens=1, huge_event=256 * 1024)
    caplog.set_level(logging.WARNING, logger="conversations")
    conversation_id, events, _ = post_and_read(alice)
    message = "The model server sent a part of the answer too large to read; the answer was stopped."
    assert events[-1]["data"]["message"] == message
    turn = saved_answer(conversation_id)
    assert turn.error_detail == message
    assert "LLM_MAX_EVENT_BYTES" in failed_call_logged(caplog, turn.trace_id).detail  # type: ignore[attr-defined]
