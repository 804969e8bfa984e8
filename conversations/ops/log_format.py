"""Log line formats: JSON objects (python-json-logger) for production, and
`message key=value …` for a terminal. Both carry the fields a record was
given as `extra` (stream/telemetry.py)."""

import logging

from pythonjsonlogger.json import JsonFormatter

# What every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Json(JsonFormatter):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)


class Plain(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        return line + "".join(f" {key}={value}" for key, value in extra.items()) if extra else line
