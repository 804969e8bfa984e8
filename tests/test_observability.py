"""What operators see: a log line per stream event with the trace id,
Prometheus metrics with the right values for a streamed, a cancelled and a
failed turn, and the admin's dashboard and token timeline."""

import json
import logging
import os
import subprocess
import sys

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from conversations.models import Turn
from conversations.ops.dashboard import decode_gaps
from conversations.ops.log_format import Json, Plain
from harness.fake_upstream import Behaviour

from .helpers import post_and_read, saved_answer, sse_events, start_event_and_a_delta, stream, wait_for_answer

METRICS_TOKEN = "metrics-test-token"


@pytest.fixture
def scrape(live, settings):
    settings.CHATSTREAM_METRICS_TOKEN = METRICS_TOKEN

    def read() -> dict[tuple, float]:
        response = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    return read


def change(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def stream_records(caplog, trace_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "conversations.stream" and getattr(r, "trace_id", None) == trace_id]


def test_a_streamed_turn(alice, upstream, scrape, caplog):
    caplog.set_level(logging.INFO, logger="conversations")
    upstream.behaviour = Behaviour(tokens=6, pace=0.05)
    before = scrape()
    conversation_id, events, _ = post_and_read(alice, headers={"X-Request-ID": "trace-streamed"})
    after = scrape()

    records = stream_records(caplog, "trace-streamed")
    assert [r.getMessage() for r in records] == ["stream.start", "stream.first_token", "stream.end"]
    end = records[-1]
    assert (end.finish_reason, end.tokens_out, end.model, end.saved) == ("stop", 6, "fake-model", True)
    assert end.tpot_ms >= 40  # tokens 50 ms apart

    assert change(before, after, "chatstream_answers_total", finish_reason="stop") == 1
    assert change(before, after, "chatstream_time_to_first_token_seconds_count", model="fake-model") == 1
    assert change(before, after, "chatstream_time_per_output_token_seconds_count", model="fake-model") == 1
    assert change(before, after, "chatstream_stream_duration_seconds_count", model="fake-model") == 1
    assert change(before, after, "chatstream_tokens_total", kind="out") == 6
    assert change(before, after, "chatstream_open_streams") == 0  # up while it streamed, down once saved

    gaps = decode_gaps(saved_answer(conversation_id).token_gaps)
    assert len(gaps) == 6 and all(gap >= 40 for gap in gaps[1:])  # one entry per piece, as they came


def test_a_cancelled_turn(alice, upstream, scrape, caplog):
    caplog.set_level(logging.INFO, logger="conversations")
    upstream.behaviour = Behaviour(tokens=1000, pace=0.01)
    conversation_id = alice.new_conversation()
    before = scrape()
    with stream(alice, conversation_id, headers={"X-Request-ID": "trace-cancelled"}) as response:
        events = sse_events(response)  # kept: a dropped iterator closes the connection
        turn_id = start_event_and_a_delta(events)
        assert alice.client.post(f"/api/turns/{turn_id}/cancel").status_code == 200
    after = scrape()
    messages = [r.getMessage() for r in stream_records(caplog, "trace-cancelled")]
    assert messages == ["stream.start", "stream.first_token", "stream.cancel", "stream.end"]
    assert stream_records(caplog, "trace-cancelled")[2].reason == "cancelled"
    assert change(before, after, "chatstream_answers_total", finish_reason="cancelled") == 1


def test_a_failed_turn(alice, upstream, scrape, caplog):
    caplog.set_level(logging.INFO, logger="conversations")
    upstream.behaviour = Behaviour(status=503)
    before = scrape()
    post_and_read(alice, headers={"X-Request-ID": "trace-failed"})
    after = scrape()
    records = stream_records(caplog, "trace-failed")
    assert [r.getMessage() for r in records].count("stream.model_call_failed") == 3  # the call and two retries
    error = next(r for r in records if r.getMessage() == "stream.error")
    assert (error.levelname, error.error_code, error.finish_reason) == ("WARNING", "upstream_status", "error")
    assert change(before, after, "chatstream_upstream_errors_total", code="upstream_status") == 3
    assert change(before, after, "chatstream_answers_total", finish_reason="error") == 1


def test_metrics_are_not_public(live, settings, client, django_user_model):
    settings.CHATSTREAM_METRICS_TOKEN = METRICS_TOKEN
    assert httpx.get(f"{live.url}/metrics").status_code == 404
    assert httpx.get(f"{live.url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    user = django_user_model.objects.create_user("plain")
    client.force_login(user)
    assert client.get("/metrics").status_code == 404
    user.is_staff = True
    user.save()
    assert client.get("/metrics").status_code == 200


def test_log_lines_as_json_and_plain():
    record = logging.makeLogRecord({"name": "conversations.stream", "msg": "stream.end", "levelname": "INFO"})
    record.trace_id, record.finish_reason = "abc", "stop"
    line = json.loads(Json().format(record))
    assert (line["message"], line["trace_id"], line["finish_reason"], line["logger"]) == (
        "stream.end",
        "abc",
        "stop",
        "conversations.stream",
    )
    assert Plain().format(record).endswith("stream.end trace_id=abc finish_reason=stop")


def test_the_dashboard_and_a_turns_timeline(alice, upstream, client):
    upstream.behaviour = Behaviour(tokens=8, pace=0.02)
    for _ in range(2):
        post_and_read(alice)
    upstream.behaviour = Behaviour(status=500)
    conversation_id, _, _ = post_and_read(alice)
    wait_for_answer(conversation_id)
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)

    page = client.get(reverse("admin:conversations_turn_dashboard"))
    text = page.content.decode()
    assert page.status_code == 200 and "3 answers" in text
    # fake-model p50 and p95, for the first output, the first answer token and tokens/s
    assert text.count("<polyline") == 6
    assert "fake-model p95" in text and ">stop<" in text and ">error<" in text
    assert reverse("admin:conversations_turn_dashboard") in client.get(reverse("admin:index")).content.decode()

    turn = Turn.objects.filter(role=Turn.Role.ASSISTANT, finish_reason="stop").first()
    page = client.get(reverse("admin:conversations_turn_change", args=[turn.pk])).content.decode()
    # The wait for the first token as a band, then a bar for each of the other 7 pieces.
    assert 'class="token-timeline"' in page and page.count("<rect") == len(decode_gaps(turn.token_gaps)) == 8


@pytest.fixture(scope="session")
def exported_spans():
    """An SDK tracer provider for the whole test process (OpenTelemetry allows
    one), keeping spans in memory."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_each_answer_is_a_genai_span_with_the_trace_id(alice, upstream, exported_spans):
    exported_spans.clear()
    upstream.behaviour = Behaviour(tokens=4)
    conversation_id, events, response = post_and_read(alice, headers={"X-Request-ID": "otel-trace-1"})
    spans = [span for span in exported_spans.get_finished_spans() if span.name == "chat fake-model"]
    assert len(spans) == 1
    span = spans[0]
    attributes = dict(span.attributes)
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == "fake-model"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.output_tokens"] == 4 and attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["chatstream.trace_id"] == "otel-trace-1"
    assert attributes["chatstream.turn_id"] == events[0]["data"]["turn_id"]
    assert [event.name for event in span.events] == ["gen_ai.first_token"]
    assert span.status.is_ok

    exported_spans.clear()
    upstream.behaviour = Behaviour(status=500)
    post_and_read(alice)
    failed = next(span for span in exported_spans.get_finished_spans() if span.name == "chat fake-model")
    assert dict(failed.attributes)["error.type"] == "upstream_status" and not failed.status.is_ok


def test_the_project_exports_spans_only_when_an_otlp_endpoint_is_set():
    script = (
        "from chatstream.tracing import configure_from_environment; from opentelemetry import trace; "
        "print(configure_from_environment(), type(trace.get_tracer_provider()).__name__)"
    )

    def run(**environ: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | environ
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout

    assert run().split() == ["False", "ProxyTracerProvider"]
    assert run(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318").split() == ["True", "TracerProvider"]
