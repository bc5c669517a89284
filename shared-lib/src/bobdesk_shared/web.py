"""The HTTP wiring every component reuses.

`create_app` builds a Flask + flask-smorest app with: the shared error shape
(validation errors are 400, never 422), `/healthz`, `/readyz`, `/metrics`
(Prometheus), the OpenAPI documents and `/docs` (`openapi`), one structured log
line and metrics per request. A component passes its blueprints (those clients
call, and the internal ones between components) and readiness checks.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable

import flask_smorest
import marshmallow as ma
from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request

from . import openapi, untrusted_json
from .errors import (
    BadRequest,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    error_body,
    register_error_handlers,
)
from .server_errors import ChunkedBodyLimit

log = logging.getLogger(__name__)

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class Parser(FlaskParser):
    """webargs parser: 400 on validation errors; unknown or repeated query parameters refused;
    bodies parsed by `untrusted_json` (too deep, too long a number, ... is 400 `malformed_json`)."""

    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": ma.RAISE, "querystring": ma.RAISE
    }

    def _raw_load_json(self, req):
        # A route that takes a JSON body takes no other type (415); no body is no body.
        if not is_json_request(req):
            if req.content_length or req.headers.get("Content-Type"):
                raise UnsupportedMediaType("The body must be application/json.")
            return webargs_core.missing
        data = req.get_data(cache=True)
        if not data:
            return webargs_core.missing
        try:
            return untrusted_json.loads(data)
        except untrusted_json.InvalidJson as exc:
            raise BadRequest(str(exc), code="malformed_json") from None

    def load_querystring(self, req, schema):
        # `limit=1&limit=500` would otherwise read the first value and ignore the other.
        repeated = sorted(name for name, values in req.args.lists()
                          if len(values) > 1 and not _takes_many(schema.fields.get(name)))
        if repeated:
            raise ValidationFailed("A query parameter is given more than once.",
                                   details={name: ["Given more than once."] for name in repeated})
        # Each value given once: a plain dict, unless a field takes several (webargs' proxy gathers
        # them). The proxy's lookup of every field of the schema was half of a list request's parsing.
        if not any(_takes_many(field) for field in schema.fields.values()):
            return req.args.to_dict()
        return super().load_querystring(req, schema)


def _takes_many(field: ma.fields.Field | None) -> bool:
    multiple = getattr(field, "is_multiple", None)
    return multiple if multiple is not None else isinstance(field, (ma.fields.List, ma.fields.Tuple))


class UntrustedJsonProvider(DefaultJSONProvider):
    """`request.get_json()` parses with the same bounds as the body parser."""

    def loads(self, s, **kwargs):
        return untrusted_json.loads(s)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "validation_error"})
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(metadata={"description": "Per-field messages, when there are any."})


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorDetailSchema, required=True)


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_pagination_header(self):
        """Lists page by cursor, not by flask-smorest's pagination: no `PaginationMetadata` in the documents."""


ReadyCheck = Callable[[], bool]


def create_app(
    settings,
    *,
    import_name: str,
    title: str,
    blueprints: Iterable[flask_smorest.Blueprint],
    ready_checks: dict[str, ReadyCheck],
    internal_blueprints: Iterable[flask_smorest.Blueprint] = (),
    description: str = "",
    max_body_bytes: int = 1 << 20,
) -> tuple[Flask, Api | None]:
    # The component's own package: Flask finds its root there (a service name such as
    # "invoices-service" would resolve to the repository folder of that name).
    app = Flask(import_name)
    app.json = UntrustedJsonProvider(app)
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=max_body_bytes,
    )
    app.json.sort_keys = False
    api = openapi.register_apis(app, Api, title=title, description=description, blueprints=blueprints,
                                internal_blueprints=internal_blueprints)
    register_error_handlers(app)  # after Api(): replaces flask-smorest's own handler
    _add_operational_routes(app, ready_checks)
    _add_request_observability(app)
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, max_body_bytes)
    return app, api


def _add_operational_routes(app: Flask, ready_checks: dict[str, ReadyCheck]) -> None:
    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        checks = {name: bool(check()) for name, check in ready_checks.items()}
        if all(checks.values()):
            return jsonify(status="ready", checks=checks)
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        error = ServiceUnavailable(f"Not ready: {failing} unreachable.", code="not_ready", details=checks)
        return jsonify(error_body(error.code, error.message, error.details)), 503, error.headers

    @app.get("/metrics")
    def metrics():
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


_QUIET_ROUTES = {"/healthz", "/readyz", "/metrics"}


def _add_request_observability(app: Flask) -> None:
    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex

    @app.after_request
    def observe(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        response.headers["X-Request-Id"] = g.get("request_id", "")
        # Counted and logged once the answer is sent (the WSGI close, which the server calls whether
        # the client read it all or not): the client does not wait for it (0.25 ms of a list request).
        response.call_on_close(functools.partial(_record, request.method, route, response.status_code, elapsed,
                                                 g.get("request_id")))
        return response


def _record(method: str, route: str, status: int, elapsed: float, request_id: str | None) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(elapsed)
    if route not in _QUIET_ROUTES:
        log.info("request", extra={"method": method, "route": route, "status": status,
                                   "duration_ms": round(elapsed * 1000, 2), "request_id": request_id})
