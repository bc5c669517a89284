"""Structured JSON logs, one object a line, with secrets redacted.

Redaction works three ways, so a secret cannot leave through a log line:
- values registered with `register_secret` (every API key or webhook secret a
  process decrypts or receives) are masked wherever they appear, whole or in part
  of a string, in the message and in structured fields;
- structured fields whose name says secret (apiKey, webhook_secret, token, ...)
  are masked whatever their value;
- `Bearer <token>` and `v1=<signature>` fragments are masked in any string.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import sys
import threading

from pythonjsonlogger import json as jsonlogger

from .timeutil import iso_ms

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(r"(api_?key|secret|password|token|authorization|cookie|signature|credential)", re.I)
_INLINE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|(v1=)[0-9a-fA-F]+", re.I)
_MIN_SECRET_LENGTH = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_pattern: re.Pattern | None = None


def register_secret(value: str | None) -> None:
    """Mask `value` in every later log line of this process."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret that contains another is masked whole.
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def redact_text(text: str) -> str:
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _INLINE.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)


@functools.lru_cache(maxsize=1024)
def _names_a_secret(key: str) -> bool:
    # Field names repeat from line to line (every request line has the same six).
    return _SECRET_KEY.search(key) is not None


def redact(value, key: str | None = None):
    """A copy of `value` with secrets masked (dicts and lists walked)."""
    if key is not None and _names_a_secret(key) and not isinstance(value, (bool, int, float, type(None))):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, (bool, int, float, type(None))):
        return value
    return redact_text(str(value))


class JsonFormatter(jsonlogger.JsonFormatter):
    """python-json-logger's formatter with our field names, our timestamps and redaction.

    Every line has `ts`, `level`, `service`, `logger` and `msg`, then the record's
    `extra=` fields, then `exc` when an exception is attached.
    """

    def __init__(self, service: str = "unknown"):
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "message": "msg", "exc_info": "exc"},
            json_default=str,
            json_serializer=functools.partial(json.dumps, separators=(",", ":")),
        )
        self.service = service

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_data["ts"] = iso_ms(dt.datetime.fromtimestamp(record.created, dt.UTC))
        log_data["level"] = record.levelname.lower()
        log_data["service"] = self.service
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()

    def process_log_record(self, log_data: dict) -> dict:
        log_data["msg"] = redact_text(str(log_data.get("msg", "")))
        return {key: value if key in _OWN_FIELDS else redact(value, key) for key, value in log_data.items()}


_OWN_FIELDS = {"ts", "level", "service", "logger"}


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """Route every logger of the process through one redacting JSON handler.

    gunicorn's own loggers propagate to it too (`gunicorn_conf.logconfig_dict`), so
    a component's output holds nothing but JSON lines.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Werkzeug's access lines would duplicate our request log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
