"""The webhook receiver (Flask app, real INGEST_DB) and its processor, against the simulator and the stub."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import requests
from bobdesk_devtools.testing import TEST_ENV, wait_until
from bobdesk_shared.providers import PROVIDERS, Provider
from bson import ObjectId
from ingest_worker.config import load_settings
from ingest_worker.webhooks.app import create_app

SECRET = "whsec_integration_secret_1"


@pytest.fixture
def app(test_env, sim_server, stub_services):
    settings = load_settings({**test_env, "YOOZ_BASE_URL": sim_server.url, "CONNECTIONS_URL": stub_services.url,
                              "INVOICES_URL": stub_services.url, "WEBHOOK_PROCESSOR_IN_RECEIVER": "0",
                              "PROVIDER_BACKOFF_BASE_MS": "10", "PROVIDER_MAX_ATTEMPTS": "2"},
                             service_name="ingest-webhooks")
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def processor(app):
    return app.extensions["webhook_processor"]


@pytest.fixture
def events(app, mongo_client, test_env):
    return mongo_client[test_env["INGEST_DB"]]["webhook_events"]


@pytest.fixture
def account(sim_server):
    return requests.post(f"{sim_server.url}/_admin/accounts", json={"invoices": 2, "webhook_secret": SECRET},
                         timeout=5).json()


@pytest.fixture
def connection(stub_services, account):
    return stub_services.add(account["api_key"], webhook_secret=SECRET)


def add_invoice(sim_server, account, **fields) -> dict:
    return requests.post(f"{sim_server.url}/_admin/accounts/{account['id']}/invoices",
                         json={"fields": fields, "webhook": False}, timeout=5).json()


def event(invoice_id, type_="invoice.created", event_id=None) -> bytes:
    return json.dumps({"id": event_id or f"evt_{ObjectId()}", "type": type_, "created_at": "2024-07-03T09:46:40Z",
                       "data": {"invoice_id": invoice_id}}).encode()


def signed(body: bytes, secret=SECRET, t=None, extra=()) -> dict:
    t = int(time.time()) if t is None else t
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Yooz-Signature": ",".join([f"t={t}", *extra, f"v1={signature}"]), "Content-Type": "application/json"}


def post(client, connection, body, headers, provider="yooz"):
    connection_id = connection if isinstance(connection, str) else connection.id
    return client.post(f"/webhooks/{provider}/{connection_id}", data=body, headers=headers)


def error_code(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]["code"]


def test_a_signed_event_is_recorded_answered_202_then_processed(client, processor, events, sim_server, account,
                                                                 connection, stub_services):
    invoice = add_invoice(sim_server, account)
    body = event(invoice["id"])
    started = time.monotonic()
    response = post(client, connection, body, signed(body))
    assert time.monotonic() - started < 0.3
    assert response.status_code == 202 and response.get_json()["status"] == "accepted"
    assert events.count_documents({"status": "pending"}) == 1
    assert stub_services.stored(connection) == {}  # nothing published before processing

    assert processor.process_one()
    stored = stub_services.stored(connection)
    assert stored[invoice["id"]]["invoice"]["number"] == invoice["number"]
    assert connection.webhook_counts[-1] == {"created": 1, "updated": 0, "unchanged": 0, "rejected": 0}
    assert events.find_one()["status"] == "done" and events.find_one()["expires_at"]
    assert not processor.process_one()


def test_a_replayed_event_is_acknowledged_and_changes_nothing(client, processor, events, sim_server, account,
                                                              connection, stub_services):
    invoice = add_invoice(sim_server, account)
    body = event(invoice["id"], event_id="evt_replayed_1")
    assert post(client, connection, body, signed(body)).status_code == 202
    processor.process_one()
    writes = stub_services.stored(connection)[invoice["id"]]["writes"]
    replay = post(client, connection, body, signed(body))
    assert replay.status_code == 200 and replay.get_json()["status"] == "duplicate"
    assert events.count_documents({}) == 1
    assert not processor.process_one()
    assert stub_services.stored(connection)[invoice["id"]]["writes"] == writes


@pytest.mark.parametrize("headers, code", [
    (lambda b: signed(b, secret="forged-secret-123"), "invalid_signature"),
    (lambda b: signed(b, t=int(time.time()) - 301), "stale_signature"),
    (lambda b: signed(b, t=int(time.time()) + 301), "stale_signature"),
    (lambda b: {"Content-Type": "application/json"}, "missing_signature"),
    (lambda b: {"Yooz-Signature": ""}, "missing_signature"),
])
def test_forged_stale_and_unsigned_events_are_401_and_change_nothing(client, events, sim_server, account,
                                                                     connection, headers, code):
    body = event(add_invoice(sim_server, account)["id"])
    assert error_code(post(client, connection, body, headers(body)), 401) == code
    assert events.count_documents({}) == 0


def test_any_valid_v1_among_several_is_accepted(client, sim_server, account, connection):
    body = event(add_invoice(sim_server, account)["id"])
    other = hmac.new(b"previous-secret", b"x", hashlib.sha256).hexdigest()
    assert post(client, connection, body, signed(body, extra=(f"v1={other}",))).status_code == 202


@pytest.mark.parametrize("body, code", [
    (b"{not json", "malformed_json"),
    (b'["a"]', "invalid_event"),
    (json.dumps({"id": "evt_x", "type": "invoice.created", "created_at": "2024-07-03T09:46:40Z"}).encode(),
     "validation_error"),
    (json.dumps({"type": "invoice.created", "created_at": "2024-07-03T09:46:40Z",
                 "data": {"invoice_id": "YZ-1"}}).encode(), "validation_error"),
])
def test_a_signed_bad_body_is_400(client, events, connection, body, code):
    assert error_code(post(client, connection, body, signed(body)), 400) == code
    assert events.count_documents({}) == 0


def test_a_provider_without_webhooks_is_404(client, events, connection, monkeypatch):
    body = event("YZ-1")
    assert error_code(post(client, str(ObjectId()), body, signed(body), provider="sage"), 404) == "unknown_provider"
    monkeypatch.setitem(PROVIDERS, "yooz", Provider(key="yooz", name="Yooz", supports_webhooks=False))
    app = create_app(load_settings({**TEST_ENV, "WEBHOOK_PROCESSOR_IN_RECEIVER": "0"}, service_name="ingest-webhooks"))
    assert error_code(post(app.test_client(), connection, body, signed(body)), 404) == "unknown_provider"
    assert events.count_documents({}) == 0


def test_every_unverifiable_delivery_gets_one_answer_whatever_the_connections_state(
        client, events, stub_services, account, connection):
    """Unknown, malformed, inactive, deleted, another provider's or secret-less connections are told
    apart by nothing: the same 401 as a forged signature on an active connection."""
    body = event("YZ-1")
    forged = post(client, connection, body, signed(body, secret="forged-secret-123"))
    answer = (forged.status_code, forged.get_json())
    assert answer[0] == 401 and answer[1]["error"]["code"] == "invalid_signature"
    inactive = stub_services.add(account["api_key"], webhook_secret=SECRET, active=False)
    deleted = stub_services.add(account["api_key"], webhook_secret=SECRET, deleted=True)
    no_secret = stub_services.add(account["api_key"])
    elsewhere = stub_services.add(account["api_key"], webhook_secret=SECRET, provider="pennylane")
    for target in ("not-an-id", str(ObjectId()), inactive, deleted, no_secret, elsewhere):
        response = post(client, target, body, signed(body))  # signed with the real secret, even
        assert (response.status_code, response.get_json()) == answer, target
    assert events.count_documents({}) == 0


def test_an_unhandled_event_type_is_acknowledged_and_ignored(client, events, connection):
    body = json.dumps({"id": "evt_other", "type": "supplier.updated", "created_at": "2024-07-03T09:46:40Z",
                       "data": {}}).encode()
    response = post(client, connection, body, signed(body))
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert events.count_documents({}) == 0


def test_invoice_deleted_cancels_it_once_the_provider_confirms(client, processor, sim_server, account, connection,
                                                                stub_services):
    invoice = add_invoice(sim_server, account)
    body = event(invoice["id"])
    post(client, connection, body, signed(body))
    processor.process_one()
    requests.delete(f"{sim_server.url}/_admin/accounts/{account['id']}/invoices/{invoice['id']}",
                    params={"webhook": "0"}, timeout=5)
    body = event(invoice["id"], "invoice.deleted")
    assert post(client, connection, body, signed(body)).status_code == 202
    processor.process_one()
    assert stub_services.stored(connection)[invoice["id"]]["cancelled"] is True


def test_a_signed_delete_of_an_invoice_the_provider_still_has_cancels_nothing(
        client, processor, sim_server, account, connection, stub_services):
    """A leaked webhook secret is not enough to cancel invoices: the provider is asked first."""
    invoice = add_invoice(sim_server, account)
    body = event(invoice["id"], "invoice.deleted")
    assert post(client, connection, body, signed(body)).status_code == 202
    assert processor.process_one()
    stored = stub_services.stored(connection)[invoice["id"]]
    assert stored["cancelled"] is False and stored["invoice"]["provider_status"] == invoice["status"]
    assert "batch" in stub_services.calls_for(connection.id)


def test_a_signed_event_whose_type_is_a_list_is_400_not_500(client, events, connection):
    body = json.dumps({"id": "evt_list", "type": ["invoice.created"], "created_at": "2024-07-03T09:46:40Z",
                       "data": {"invoice_id": "YZ-1"}}).encode()
    response = post(client, connection, body, signed(body))
    assert error_code(response, 400) == "validation_error"
    assert response.get_json()["error"]["details"] == {"type": ["Not a valid string."]}
    assert events.count_documents({}) == 0


def test_an_invoice_gone_at_the_provider_is_cancelled(client, processor, connection, stub_services):
    body = event("YZ-NEVER-EXISTED", "invoice.updated")
    post(client, connection, body, signed(body))
    assert processor.process_one()
    assert "batch" in stub_services.calls_for(connection.id)


def test_a_failing_provider_is_retried_with_backoff_until_it_works(client, processor, events, sim_server, account,
                                                                   connection, stub_services):
    invoice = add_invoice(sim_server, account)
    requests.put(f"{sim_server.url}/_admin/accounts/{account['id']}/faults", json={"error_rate": 1}, timeout=5)
    body = event(invoice["id"])
    post(client, connection, body, signed(body))
    assert processor.process_one()
    pending = events.find_one()
    assert pending["status"] == "pending" and pending["attempts"] == 1 and pending["detail"]
    requests.put(f"{sim_server.url}/_admin/accounts/{account['id']}/faults", json={}, timeout=5)
    events.update_one({}, {"$set": {"next_attempt_at": pending["received_at"]}})  # skip the wait
    assert processor.process_one()
    assert events.find_one()["status"] == "done"
    assert invoice["id"] in stub_services.stored(connection)


def test_an_event_whose_processor_died_is_taken_up_after_its_lease(client, processor, events, sim_server, account,
                                                                   connection, stub_services):
    invoice = add_invoice(sim_server, account)
    body = event(invoice["id"])
    post(client, connection, body, signed(body))
    assert processor.store.claim("a-processor-that-dies", 60)  # claimed, never finished
    assert not processor.process_one()
    events.update_one({}, {"$set": {"next_attempt_at": events.find_one()["received_at"]}})  # the lease ran out
    assert processor.process_one()
    assert invoice["id"] in stub_services.stored(connection)


def test_an_event_for_a_connection_deleted_meanwhile_is_dropped(client, processor, events, sim_server, account,
                                                                connection, stub_services):
    body = event(add_invoice(sim_server, account)["id"])
    post(client, connection, body, signed(body))
    connection.deleted = True
    assert processor.process_one()
    assert events.find_one()["outcome"] == "dropped"
    assert stub_services.stored(connection) == {}


def test_the_processor_thread_publishes_within_moments(test_env, sim_server, stub_services, account, connection):
    settings = load_settings({**test_env, "YOOZ_BASE_URL": sim_server.url, "CONNECTIONS_URL": stub_services.url,
                              "INVOICES_URL": stub_services.url}, service_name="ingest-webhooks")
    app = create_app(settings)
    invoice = add_invoice(sim_server, account)
    body = event(invoice["id"])
    try:
        assert post(app.test_client(), connection, body, signed(body)).status_code == 202
        wait_until(lambda: invoice["id"] in stub_services.stored(connection), 3, message="webhook processed")
    finally:
        app.extensions["webhook_processor_stop"].set()


def test_readiness_and_documentation(client):
    assert client.get("/readyz").status_code == 200
    spec = client.get("/openapi.json").get_json()
    assert "/webhooks/{provider}/{connection_id}" in spec["paths"]
    assert client.get("/metrics").status_code == 200
