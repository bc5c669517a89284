"""What every simulator does around its provider API: request statistics and fault injection.

Faults are per account: probabilities per request of the provider API (never the admin API)
of throttling (429 + Retry-After), server errors (500/502/503), slowness and malformed
answers, on the endpoints they name. `/_admin/accounts/{id}/faults` sets them and
`/_admin/accounts/{id}/stats` reads (or resets) what was served, including the most
requests ever served at once for one account (two workers polling one connection at the
same time would show as 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import Callable

import marshmallow as ma
from bobdesk_shared.schemas import JsonInteger, StrictSchema
from flask import Response, jsonify
from flask.views import MethodView


@dataclasses.dataclass
class Faults:
    throttle_rate: float = 0.0
    retry_after: int = 1
    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    malformed_rate: float = 0.0
    endpoints: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "endpoints": list(self.endpoints)}


def faults_schema(endpoints: tuple[str, ...]) -> type[StrictSchema]:
    """The body of `PUT /_admin/accounts/{id}/faults` for a simulator with these endpoints."""
    names = tuple(endpoints)  # a class body cannot read the argument it shadows

    class FaultsSchema(StrictSchema):
        throttle_rate = ma.fields.Float(load_default=0.0, validate=ma.validate.Range(0, 1))
        retry_after = JsonInteger(load_default=1, validate=ma.validate.Range(0, 3600))
        error_rate = ma.fields.Float(load_default=0.0, validate=ma.validate.Range(0, 1))
        slow_rate = ma.fields.Float(load_default=0.0, validate=ma.validate.Range(0, 1))
        slow_seconds = ma.fields.Float(load_default=0.0, validate=ma.validate.Range(0, 120))
        malformed_rate = ma.fields.Float(load_default=0.0, validate=ma.validate.Range(0, 1))
        endpoints = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(names)), load_default=list(names),
                                   validate=ma.validate.Length(min=1))

    return FaultsSchema


def throttled(retry_after: int) -> Response:
    response = jsonify(error={"code": "rate_limited", "message": "Too many requests."})
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response


def count_request(lock: threading.RLock, stats, endpoint: str, at: str) -> None:
    with lock:
        stats.requests += 1
        setattr(stats, f"{endpoint}_requests", getattr(stats, f"{endpoint}_requests") + 1)
        stats.last_request_at = at


@contextlib.contextmanager
def in_flight(lock: threading.RLock, account):
    """Counts the requests being served for `account`, and the most ever served at once."""
    with lock:
        account.stats.in_flight += 1
        account.stats.max_concurrent = max(account.stats.max_concurrent, account.stats.in_flight)
    try:
        yield
    finally:
        with lock:
            account.stats.in_flight -= 1


def with_faults(lock: threading.RLock, rng: random.Random, account, endpoint: str, serve: Callable[[], Response],
                malformed_bodies: tuple[bytes, ...]) -> Response:
    """`serve()`'s answer, unless this account's faults on `endpoint` slow, throttle, fail or garble it."""
    with lock:
        faults = account.faults if endpoint in account.faults.endpoints else Faults()
        draws = [rng.random() for _ in range(4)]
    stats = account.stats
    if draws[0] < faults.slow_rate:
        with lock:
            stats.slowed += 1
        time.sleep(faults.slow_seconds)
    if draws[1] < faults.throttle_rate:
        with lock:
            stats.throttled += 1
        return throttled(faults.retry_after)
    if draws[2] < faults.error_rate:
        with lock:
            stats.errors += 1
            status = rng.choice((500, 502, 503))
        return Response(b'{"error": "internal"}' if status == 500 else b"<html>Bad gateway</html>", status=status)
    response = serve()
    if draws[3] < faults.malformed_rate:
        with lock:
            stats.malformed += 1
            body = rng.choice(malformed_bodies)
        return Response(body, status=200, content_type="application/json")
    return response


def add_admin_routes(blueprint, endpoints: tuple[str, ...], account_of: Callable[[str], object],
                     lock_of: Callable[[], threading.RLock], new_stats: Callable[..., object]) -> None:
    """`PUT .../faults` and `GET`/`DELETE .../stats` of an account, on the simulator's admin blueprint."""
    schema = faults_schema(endpoints)

    @blueprint.route("/accounts/<account_id>/faults")
    class AccountFaults(MethodView):
        @blueprint.arguments(schema)
        def put(self, body, account_id):
            account = account_of(account_id)
            with lock_of():
                account.faults = Faults(**{**body, "endpoints": tuple(body["endpoints"])})
                return jsonify(account.faults.as_dict())

    @blueprint.route("/accounts/<account_id>/stats")
    class AccountStats(MethodView):
        def get(self, account_id):
            account = account_of(account_id)
            with lock_of():
                return jsonify(account.stats.as_dict())

        def delete(self, account_id):
            account = account_of(account_id)
            with lock_of():
                busy = account.stats.in_flight
                account.stats = new_stats(in_flight=busy, max_concurrent=busy)
            return "", 204
