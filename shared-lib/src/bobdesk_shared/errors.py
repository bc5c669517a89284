"""One error shape for every 4xx/5xx.

`{"error": {"code": "<snake_case>", "message": "<text>", "details": {...}?}}`
Views raise an `ApiError` subclass; werkzeug and flask-smorest errors are
translated; anything unexpected becomes a 500 that says nothing of internals.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException

from .mongo import unreachable

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    code = "internal_error"
    message = "Internal server error."

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "The request is malformed."


class ValidationFailed(BadRequest):
    code, message = "validation_error", "The request has invalid fields."


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "This token does not grant access to this resource."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "Not found."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class UnsupportedMediaType(ApiError):
    status, code, message = 415, "unsupported_media_type", "The body must be application/json."


RETRY_AFTER_SECONDS = 5  # about the driver's server selection timeout: a retry sooner would wait anyway


class ServiceUnavailable(ApiError):
    """503 with `Retry-After`: the database or another component cannot be reached right now."""

    status, code, message = 503, "unavailable", "A dependency is unavailable; retry later."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message, code=code, details=details,
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})})


# HTTP status -> code for errors raised by werkzeug/flask-smorest.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def error_body(code: str, message: str, details: Any = None) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _json(status: int, code: str, message: str, details: Any = None, headers=None):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_api_error(error: ApiError):
    return _json(error.status, error.code, error.message, error.details, error.headers)


def _validation_details(messages: Any) -> Any:
    """Flatten webargs' `{location: {field: [msg]}}` into `{field: [msg]}`."""
    if not isinstance(messages, dict):
        return messages
    details: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            details.update(fields)
        else:  # a whole-location error, e.g. {"json": ["Invalid JSON body."]}
            details[location] = fields
    return details


def _from_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if messages is not None and status in (400, 422):
        return _json(400, "validation_error", "The request has invalid fields.", _validation_details(messages))
    if status >= 500:
        return _json(status, "internal_error", "Internal server error.")
    code = _HTTP_CODES.get(status, "http_error")
    message = data.get("message") or error.description or error.name
    # The exception's own headers stay (a 405's `Allow`); the body is ours.
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    return _json(status, code, str(message), None, {**headers, **(data.get("headers") or {})})


def _from_unexpected(error: Exception):
    log.exception("unhandled exception")
    return _json(500, "internal_error", "Internal server error.")


def _from_database_error(error: PyMongoError):
    """A database that cannot be reached (down, no primary, timed out) is a 503 on every route."""
    if not unreachable(error):
        return _from_unexpected(error)
    log.warning("database unreachable", extra={"error": type(error).__name__})
    return _from_api_error(ServiceUnavailable("The database is unavailable; retry later."))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _from_api_error)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(PyMongoError, _from_database_error)
    app.register_error_handler(Exception, _from_unexpected)
