"""The HTTP server layer's own answers, held to the rules of every other answer.

- gunicorn refuses some requests before any application code runs (a request line over
  its limit: 414; a header over its limit: 431; a malformed request or chunk: 400) and
  writes those answers as HTML. `install_gunicorn_json_errors` makes them the shared
  JSON error shape, with a fixed message that repeats nothing of the request.
- A chunked body reaches the application without a length, and werkzeug then reads at
  most the body limit and silently drops the rest: the application parses a truncated
  body (400). `ChunkedBodyLimit` reads a chunked body first, one byte past the limit at
  most, and hands it on with its length, so an oversized one is 413 like any other.
"""

from __future__ import annotations

import io
import json

from .errors import error_body

# status -> (code, message) for what gunicorn answers itself.
_GUNICORN_ERRORS = {
    400: ("bad_request", "The HTTP request is malformed."),
    403: ("forbidden", "The request is forbidden."),
    413: ("payload_too_large", "The request body is too large."),
    414: ("uri_too_long", "The request line is too long."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("header_fields_too_large", "A request header, or all of them, are too large."),
    501: ("not_implemented", "The transfer coding is not supported."),
}


def _json_error_response(status: int, reason: str) -> bytes:
    code, message = _GUNICORN_ERRORS.get(status, ("internal_error", "Internal server error."))
    body = json.dumps(error_body(code, message)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def install_gunicorn_json_errors() -> None:
    """Make gunicorn write its own error answers as JSON (called from the gunicorn config, in the
    master, before the workers fork). Every such answer goes through `gunicorn.util.write_error`."""
    from gunicorn import util

    def write_json_error(sock, status_int, reason, mesg):
        util.write_nonblock(sock, _json_error_response(int(status_int), reason))

    util.write_error = write_json_error


class ChunkedBodyLimit:
    """WSGI middleware: a chunked body is read here (at most `max_bytes` + 1 bytes) and passed on
    with its Content-Length, so werkzeug's own limit answers 413 when it is too large."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ, start_response):
        if not environ.get("CONTENT_LENGTH") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read(self.max_bytes + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # werkzeug ignores the length of a chunked body
        return self.app(environ, start_response)
