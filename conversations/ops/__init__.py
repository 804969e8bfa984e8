"""What operators see of the streams.

telemetry.py    one log line per stream event that matters, and the metrics
metrics.py      the Prometheus metrics and the page that serves them
dashboard.py    the admin's streams dashboard and a turn's token timeline
log_format.py   JSON and key=value log lines
"""
