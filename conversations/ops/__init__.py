"""What operators see of the streams.

metrics.py      the Prometheus metrics and the page that serves them
dashboard.py    the admin's streams dashboard and a turn's token timeline
log_format.py   JSON and key=value log lines
tracing.py      an OpenTelemetry span per answer

A stream's own events reach them through stream/telemetry.py.
"""
