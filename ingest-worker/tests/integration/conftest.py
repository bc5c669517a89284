"""A stub of connections-service and invoices-service, speaking docs/internal-api.md in memory.

Enough of the contract to test the worker alone: leases with fences, due times,
checkpoints, poll results, webhook credentials, idempotent batches with
authorize-ingest. It records every call, so tests can check the order of calls, and every
refusal of a lease. test_stub_contract.py holds its answers to the real services'.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared.auth import INGEST_WORKER, service_from_token
from bson import ObjectId
from flask import Flask, jsonify, request
from ingest_worker import canonical
from werkzeug.serving import make_server


@dataclasses.dataclass
class StubConnection:
    id: str
    client: str
    provider: str
    api_key: str | None
    webhook_secret: str | None = None
    active: bool = True
    deleted: bool = False
    checkpoint: dict | None = None
    fence: int = 0
    lease_owner: str | None = None
    lease_until: float = 0.0
    next_poll_at: float = 0.0
    last_polled_at: float | None = None
    failures: list = dataclasses.field(default_factory=list)
    successes: int = 0
    webhook_counts: list = dataclasses.field(default_factory=list)
    # (ids of the invoices stored so far, checkpoint) of every checkpoint a heartbeat stored
    checkpoints: list = dataclasses.field(default_factory=list)
    batches_in_flight: int = 0
    batches_received: int = 0
    fail_from_batch: int | None = None  # answer 503 to every batch from this one on (1 = the first)
    # A slow store and failing stores of the connection's own batches (the stub serves a module's
    # tests, and another test's connection polled again meanwhile must never take them): how long
    # its next batches take, in order, and how many of them are answered 503.
    batch_seconds: list = dataclasses.field(default_factory=list)
    failing_batches: int = 0
    most_batches_in_flight: int = 0  # at once, over the connection's life


class StubServices:
    def __init__(self, poll_interval: float = 3600):
        self.lock = threading.RLock()
        self.poll_interval = poll_interval
        self.connections: dict[str, StubConnection] = {}
        self.invoices: dict[tuple, dict] = {}
        self.listed: dict[tuple, str | None] = {}  # the last full listing that listed each invoice
        self.calls: list[tuple] = []
        self.reconciled: list[str] = []
        # (connection id, error code, calls of that connection so far) of every 409 on a lease
        self.refusals: list[tuple[str, str, int]] = []
        self.claim_attempts = 0  # answered 200 or 204
        self.app = self._build()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, api_key, *, provider="yooz", webhook_secret=None, client=None, **fields) -> StubConnection:
        connection = StubConnection(id=str(ObjectId()), client=client or str(ObjectId()), provider=provider,
                                    api_key=api_key, webhook_secret=webhook_secret, **fields)
        with self.lock:
            self.connections[connection.id] = connection
        return connection

    def stored(self, connection: StubConnection) -> dict[str, dict]:
        with self.lock:
            return {key[2]: value for key, value in self.invoices.items() if key[0] == connection.client}

    def calls_for(self, connection_id: str) -> list[str]:
        with self.lock:
            return [name for name, cid in self.calls if cid == connection_id]

    # --- the contract -------------------------------------------------------------

    def _lease_problem(self, connection: StubConnection, fence) -> tuple | None:
        if connection.deleted or not connection.active:
            code = "connection_inactive"
        elif fence != connection.fence or connection.lease_until < time.monotonic():
            code = "lease_lost"
        else:
            return None
        self.refusals.append((connection.id, code, len(self.calls_for(connection.id))))
        return jsonify(error={"code": code, "message": code.replace("_", " ")}), 409

    def first_refusal(self, connection: StubConnection, code: str) -> int | None:
        """How many calls of `connection` the stub had received at its first `code` refusal."""
        with self.lock:
            return next((calls for cid, refused, calls in self.refusals if (cid, refused) == (connection.id, code)),
                        None)

    def _build(self) -> Flask:
        app = Flask("stub")

        @app.before_request
        def authenticate():
            if request.path == "/healthz":
                return None
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            try:
                caller = service_from_token(token, TEST_ENV["SERVICE_JWT_SECRET"]).name
            except Exception:
                return jsonify(error={"code": "unauthorized", "message": "service token"}), 401
            if caller != INGEST_WORKER:  # every route stubbed here serves the worker only
                return jsonify(error={"code": "service_not_allowed", "message": "not a caller"}), 403
            return None

        @app.get("/healthz")
        def healthz():
            return jsonify(status="ok")

        @app.post("/internal/connections/claim")
        def claim():
            body = request.get_json()
            now = time.monotonic()
            with self.lock:
                self.claim_attempts += 1
                due = [c for c in self.connections.values() if c.active and not c.deleted and c.api_key
                       and c.next_poll_at <= now and c.lease_until < now]
                if not due:
                    return "", 204
                connection = min(due, key=lambda c: c.next_poll_at)
                connection.fence += 1
                connection.lease_owner = body["worker"]
                connection.lease_until = now + body["lease_seconds"]
                self.calls.append(("claim", connection.id))
                return jsonify(connection={"id": connection.id, "client": connection.client,
                                           "provider": connection.provider, "api_key": connection.api_key,
                                           "checkpoint": connection.checkpoint, "fence": connection.fence,
                                           "lease_expires_at": "2030-01-01T00:00:00.000Z"})

        def connection_or_404(connection_id):
            connection = self.connections.get(connection_id)
            if connection is None or connection.deleted:
                return None, (jsonify(error={"code": "not_found", "message": "no"}), 404)
            return connection, None

        @app.post("/internal/connections/<cid>/heartbeat")
        def heartbeat(cid):
            body = request.get_json()
            with self.lock:
                connection, missing = connection_or_404(cid)
                if missing:
                    return missing
                self.calls.append(("heartbeat+checkpoint" if "checkpoint" in body else "heartbeat", cid))
                problem = self._lease_problem(connection, body["fence"])
                if problem:
                    return problem
                connection.lease_until = time.monotonic() + body["lease_seconds"]
                if "checkpoint" in body:
                    connection.checkpoint = body["checkpoint"]
                    connection.checkpoints.append((set(self.stored(connection)), body["checkpoint"]))
                return jsonify(lease_expires_at="2030-01-01T00:00:00.000Z", api_key=connection.api_key)

        @app.post("/internal/connections/<cid>/poll-result")
        def poll_result(cid):
            body = request.get_json()
            with self.lock:
                connection, missing = connection_or_404(cid)
                if missing:
                    return missing
                self.calls.append((f"poll-result:{body['outcome']}", cid))
                problem = self._lease_problem(connection, body["fence"])
                if problem:
                    return problem
                now = time.monotonic()
                if body["outcome"] == "success":
                    connection.last_polled_at = time.time()
                    connection.checkpoint = body["checkpoint"]
                    connection.successes += 1
                    connection.next_poll_at = now + self.poll_interval
                else:
                    connection.failures.append(body)
                    if "checkpoint" in body:
                        connection.checkpoint = body["checkpoint"]
                    connection.next_poll_at = now + max(body.get("retry_after_seconds") or 0, 0.2)
                connection.lease_until = 0
                return jsonify(next_poll_at="2030-01-01T00:00:00.000Z")

        @app.post("/internal/connections/<cid>/release")
        def release(cid):
            body = request.get_json()
            with self.lock:
                connection, missing = connection_or_404(cid)
                if missing:
                    return missing
                self.calls.append(("release", cid))
                problem = self._lease_problem(connection, body["fence"])
                if problem:
                    return problem
                connection.lease_until = 0
                return "", 204

        @app.get("/internal/connections/<cid>/webhook-credentials")
        def credentials(cid):
            with self.lock:
                connection, missing = connection_or_404(cid)
                if missing:
                    return missing
                if not connection.active:
                    return jsonify(error={"code": "connection_inactive", "message": "inactive"}), 409
                if not connection.webhook_secret:
                    return jsonify(error={"code": "no_webhook_secret", "message": "none"}), 409
                return jsonify(id=cid, client=connection.client, provider=connection.provider,
                               webhook_secret=connection.webhook_secret, api_key=connection.api_key)

        @app.post("/internal/connections/<cid>/webhook-result")
        def webhook_result(cid):
            with self.lock:
                self.connections[cid].webhook_counts.append(request.get_json())
            return "", 204

        @app.post("/internal/invoices/batch")
        def batch():
            body = request.get_json()
            cid = body["connection"]
            with self.lock:
                self.calls.append(("batch", cid))
                seconds = 0
                connection = self.connections.get(cid)
                if connection is not None:
                    seconds = connection.batch_seconds.pop(0) if connection.batch_seconds else 0
                    connection.batches_received += 1
                    failing_from = connection.fail_from_batch
                    if failing_from is not None and connection.batches_received >= failing_from:
                        return jsonify(error={"code": "unavailable", "message": "try later"}), 503
                    connection.batches_in_flight += 1
                    connection.most_batches_in_flight = max(connection.most_batches_in_flight,
                                                            connection.batches_in_flight)
            try:
                time.sleep(seconds)
                return store(body, cid)
            finally:
                if connection is not None:
                    with self.lock:
                        connection.batches_in_flight -= 1

        def store(body, cid):
            with self.lock:
                connection, missing = connection_or_404(cid)
                if missing:
                    return missing
                if connection.failing_batches:
                    connection.failing_batches -= 1
                    return jsonify(error={"code": "unavailable", "message": "try later"}), 503
                if body["fence"] is None:
                    if not connection.active:
                        return jsonify(error={"code": "connection_inactive", "message": "inactive"}), 409
                else:
                    problem = self._lease_problem(connection, body["fence"])
                    if problem:
                        return problem
                for index, invoice in enumerate(body["invoices"]):
                    try:
                        canonical.validate(invoice)
                    except canonical.InvalidInvoice as exc:
                        return jsonify(error={"code": "validation_error", "message": "bad",
                                              "details": {str(index): exc.reason}}), 400
                counts = {"created": 0, "updated": 0, "unchanged": 0, "cancelled": 0}
                results = []
                for invoice in body["invoices"]:
                    key = (connection.client, connection.provider, invoice["invoice_platform_id"])
                    self.listed[key] = body.get("listing") or self.listed.get(key)
                    old = self.invoices.get(key)
                    visible = {k: v for k, v in invoice.items() if k != "raw"}
                    if old is None:
                        outcome = "created"
                        self.invoices[key] = {"id": str(ObjectId()), "invoice": visible, "writes": 1,
                                              "cancelled": invoice["cancelled"]}
                    elif old["invoice"] == visible:
                        outcome = "unchanged"
                    else:
                        outcome = "updated"
                        old.update(invoice=visible, writes=old["writes"] + 1, cancelled=invoice["cancelled"])
                    counts[outcome] += 1
                    results.append({"invoice_platform_id": invoice["invoice_platform_id"],
                                    "id": self.invoices[key]["id"], "outcome": outcome})
                for cancellation in body["cancellations"]:
                    key = (connection.client, connection.provider, cancellation["invoice_platform_id"])
                    stored = self.invoices.get(key)
                    if stored is not None:
                        stored["cancelled"] = True
                        counts["cancelled"] += 1
                    results.append({"invoice_platform_id": cancellation["invoice_platform_id"],
                                    "id": stored and stored["id"], "outcome": "cancelled" if stored else "not_found"})
                return jsonify(**counts, results=results)

        @app.post("/internal/invoices/listing-complete")
        def listing_complete():
            body = request.get_json()
            with self.lock:
                connection, missing = connection_or_404(body["connection"])
                if missing:
                    return missing
                self.calls.append(("listing-complete", connection.id))
                problem = self._lease_problem(connection, body["fence"])
                if problem:
                    return problem
                unlisted = [key for key, stored in self.invoices.items()
                            if key[:2] == (connection.client, connection.provider) and not stored["cancelled"]
                            and self.listed.get(key) != body["listing"]]
                for key in unlisted:
                    self.invoices[key]["cancelled"] = True
                return jsonify(cancelled=len(unlisted))

        @app.post("/internal/invoices/reconcile")
        def reconcile():
            with self.lock:
                self.reconciled.append(request.get_json()["client"])
            return jsonify(suppliers_rematched=0, tickets_linked=0)

        return app


@pytest.fixture(scope="module")
def stub_services():
    stub = StubServices()
    yield stub
    stub.close()
