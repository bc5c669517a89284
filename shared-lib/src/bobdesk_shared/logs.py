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

import json
import logging
import re
import sys
import threading
import traceback

from .timeutil import iso_ms, utcnow

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(r"(api_?key|secret|password|token|authorization|cookie|signature|credential)", re.I)
_INLINE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|(v1=)[0-9a-fA-F]+", re.I)
_MIN_SECRET_LENGTH = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_pattern: re.Pattern | None = None

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


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


def redact(value, key: str | None = None):
    """A copy of `value` with secrets masked (dicts and lists walked)."""
    if key is not None and _SECRET_KEY.search(key) and not isinstance(value, (bool, int, float, type(None))):
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


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": iso_ms(utcnow()),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value, key)
        if record.exc_info:
            entry["exc"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """Route every logger of the process through one redacting JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Werkzeug's and gunicorn's access lines would duplicate our request log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
