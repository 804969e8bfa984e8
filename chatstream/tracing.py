"""OpenTelemetry for chatstream's project: off unless the environment names
an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
read by the exporter as the OpenTelemetry docs describe, with
OTEL_SERVICE_NAME and the rest). The app makes its spans through the API
alone (conversations/ops/tracing.py); a project of your own sets up its
provider its own way."""

import os

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_from_environment() -> bool:
    """Install an SDK tracer provider exporting over OTLP/HTTP in batches; False if none is configured."""
    if not any(os.environ.get(name) for name in ENDPOINTS):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "chatstream")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True
