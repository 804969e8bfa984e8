"""Prometheus metrics of the streams, and the page Prometheus scrapes.

`/metrics` is not public: it answers a `Bearer` CHATSTREAM_METRICS_TOKEN
(what a Prometheus scrape config sends) or a staff session, and is a 404 to
anyone else. With several web processes, set PROMETHEUS_MULTIPROC_DIR (an
empty directory, wiped at each start) and any process's `/metrics` reports
all of them.
"""

import hmac
import os

from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..conf import conf

# Seconds; an answer's first token usually comes within a few hundred ms to a
# few seconds, tokens tens of ms apart, and whole answers take up to minutes.
TTFT = Histogram(
    "chatstream_time_to_first_token_seconds",
    "From the request to the model's first output of any kind (reasoning, a tool call, text)",
    ["model"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
# A reasoning model thinks for seconds to minutes before its answer starts.
TTFT_ANSWER = Histogram(
    "chatstream_time_to_first_answer_token_seconds",
    "From the request to the answer's first text",
    ["model"],
    buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
TPOT = Histogram(
    "chatstream_time_per_output_token_seconds",
    "Mean time between an answer's tokens after the first",
    ["model"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1),
)
DURATION = Histogram(
    "chatstream_stream_duration_seconds",
    "From the request to the answer saved",
    ["model"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
OPEN_STREAMS = Gauge("chatstream_open_streams", "Answers being generated now", multiprocess_mode="livesum")
FINISHED = Counter("chatstream_answers_total", "Answers saved, by finish reason", ["finish_reason"])
UPSTREAM_ERRORS = Counter("chatstream_upstream_errors_total", "Failed model calls (each try counts), by kind", ["code"])
TOKENS = Counter(
    "chatstream_tokens_total",
    "Tokens by kind: in, out (estimated where not reported), and of those cached (in) and reasoning (out)",
    ["kind"],
)
ROUTES = Counter("chatstream_routes_total", 'Messages sent to "auto", by the model the router chose', ["model"])
COST = Counter("chatstream_cost_total", "What answers cost, in the prices' currency", ["model"])


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _allowed(request: HttpRequest) -> bool:
    token = conf.CHATSTREAM_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404  # not there, as far as the public can tell
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
