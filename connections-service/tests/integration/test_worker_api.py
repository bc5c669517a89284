"""`/internal/connections`: leases with fencing, poll results, ingestion authorisation, webhook credentials."""

from __future__ import annotations

import datetime as dt

import pytest
from bobdesk_devtools.testing import service_token, user_token
from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE
from bson import ObjectId

from ..conftest import API_KEY, WEBHOOK_SECRET
from .test_connections_api import assert_error


@pytest.fixture
def connection(create):
    return create(webhookSecret=WEBHOOK_SECRET).get_json()


def expire_lease(db, connection_id):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.connections.update_one({"_id": ObjectId(connection_id)}, {"$set": {"lease.expires_at": past}})


def test_a_new_connection_is_claimed_at_once_with_its_key_and_no_checkpoint(connection, worker):
    claimed = worker.claim().get_json()["connection"]
    assert claimed["id"] == connection["id"] and claimed["client"] == connection["client"]
    assert claimed["provider"] == "yooz" and claimed["api_key"] == API_KEY
    assert claimed["checkpoint"] is None and claimed["fence"] == 1 and claimed["lease_expires_at"]


def test_nothing_due_is_204(worker):
    response = worker.claim()
    assert response.status_code == 204 and response.get_data() == b""


def test_a_leased_connection_is_not_claimed_twice(connection, worker):
    assert worker.claim("a").status_code == 200
    assert worker.claim("b").status_code == 204


def test_inactive_and_deleted_connections_are_never_claimed(create, http, company, worker):
    create(active=False)
    doomed = create().get_json()
    http.delete(f"/invoice-connections/{doomed['id']}", headers=company.headers)
    assert worker.claim().status_code == 204


def test_the_most_overdue_connection_is_claimed_first(create, other_company, worker, db):
    first = create().get_json()
    second = create(as_company=other_company).get_json()
    db.connections.update_one({"_id": ObjectId(second["id"])},
                              {"$set": {"next_poll_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}})
    assert worker.claim().get_json()["connection"]["id"] == second["id"]
    assert worker.claim().get_json()["connection"]["id"] == first["id"]


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(connection, worker, db):
    old = worker.claim("a").get_json()["connection"]
    expire_lease(db, connection["id"])
    new = worker.claim("b").get_json()["connection"]
    assert new["fence"] == old["fence"] + 1
    cid = connection["id"]
    assert_error(worker.post(f"/{cid}/heartbeat", {"fence": old["fence"], "lease_seconds": 60}), 409, "lease_lost")
    assert_error(worker.post(f"/{cid}/authorize-ingest", {"fence": old["fence"]}), 409, "lease_lost")
    assert_error(worker.post(f"/{cid}/poll-result", {"fence": old["fence"], "outcome": "success", "checkpoint": {}}),
                 409, "lease_lost")
    assert_error(worker.post(f"/{cid}/release", {"fence": old["fence"]}), 409, "lease_lost")
    assert worker.post(f"/{cid}/heartbeat", {"fence": new["fence"], "lease_seconds": 60}).status_code == 200


def test_heartbeat_renews_stores_the_checkpoint_and_answers_the_current_key(connection, worker, http, company):
    claimed = worker.claim(lease_seconds=10).get_json()["connection"]
    cid = connection["id"]
    beat = worker.post(f"/{cid}/heartbeat", {"fence": claimed["fence"], "lease_seconds": 120,
                                             "checkpoint": {"updated_since": "2024-01-01", "page": "p2"}})
    assert beat.status_code == 200
    assert beat.get_json()["lease_expires_at"] > claimed["lease_expires_at"]
    assert beat.get_json()["api_key"] == API_KEY
    http.patch(f"/invoice-connections/{cid}", json={"apiKey": "yz_live_sk_rotated_key"}, headers=company.headers)
    beat = worker.post(f"/{cid}/heartbeat", {"fence": claimed["fence"], "lease_seconds": 120})
    assert beat.get_json()["api_key"] == "yz_live_sk_rotated_key"  # used from the next provider call on
    worker.post(f"/{cid}/release", {"fence": claimed["fence"]})
    again = worker.claim().get_json()["connection"]
    assert again["checkpoint"] == {"updated_since": "2024-01-01", "page": "p2"}
    assert again["api_key"] == "yz_live_sk_rotated_key"


def test_success_sets_last_polled_at_schedules_the_next_poll_and_releases(connection, worker, http, company):
    claimed = worker.claim().get_json()["connection"]
    cid = connection["id"]
    result = worker.post(f"/{cid}/poll-result", {
        "fence": claimed["fence"], "outcome": "success", "checkpoint": {"cursor": "c9"},
        "stats": {"pages": 2, "created": 5, "updated": 1, "unchanged": 0, "rejected": 1}, "duration_ms": 75})
    assert result.status_code == 200
    view = http.get("/invoice-connections", headers=company.headers).get_json()[0]
    assert view["lastPolledAt"] is not None and view["updatedAt"] == view["lastPolledAt"]
    status = http.get(f"/invoice-connections/{cid}/sync", headers=company.headers).get_json()
    assert status["nextPollAt"] == result.get_json()["next_poll_at"] > view["lastPolledAt"]
    assert status["invoicesIngested"] == 6 and status["lastRun"]["rejected"] == 1 and status["polling"] is False
    assert worker.claim().status_code == 204  # not due before the interval


def test_failure_never_sets_last_polled_at_and_honours_retry_after(connection, worker, http, company):
    cid = connection["id"]
    claimed = worker.claim().get_json()["connection"]
    result = worker.post(f"/{cid}/poll-result", {
        "fence": claimed["fence"], "outcome": "failure", "retry_after_seconds": 3600,
        "error": {"kind": "bad_credentials", "message": "Yooz answered 401"}})
    assert result.status_code == 200
    view = http.get("/invoice-connections", headers=company.headers).get_json()[0]
    assert view["lastPolledAt"] is None and view["updatedAt"] == view["createdAt"]
    status = http.get(f"/invoice-connections/{cid}/sync", headers=company.headers).get_json()
    assert status["lastError"]["kind"] == "bad_credentials" and status["consecutiveFailures"] == 1
    next_poll = dt.datetime.fromisoformat(status["nextPollAt"])
    assert next_poll >= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3590)
    assert worker.claim().status_code == 204
    # A new key makes it due at once, whatever the backoff.
    http.patch(f"/invoice-connections/{cid}", json={"apiKey": "yz_live_sk_fixed"}, headers=company.headers)
    assert worker.claim().get_json()["connection"]["api_key"] == "yz_live_sk_fixed"


def test_poll_now_during_a_poll_makes_the_next_one_due_at_once(connection, worker, http, company):
    cid = connection["id"]
    claimed = worker.claim().get_json()["connection"]
    assert http.post(f"/invoice-connections/{cid}/sync", headers=company.headers).status_code == 202
    assert worker.claim().status_code == 204  # still leased: never two pollers at once
    worker.post(f"/{cid}/poll-result", {"fence": claimed["fence"], "outcome": "success", "checkpoint": {}})
    assert worker.claim().status_code == 200


def test_release_leaves_the_connection_due(connection, worker):
    claimed = worker.claim().get_json()["connection"]
    assert worker.post(f"/{connection['id']}/release", {"fence": claimed["fence"]}).status_code == 204
    assert worker.claim().get_json()["connection"]["fence"] == claimed["fence"] + 1


@pytest.mark.parametrize("action", ["deactivate", "delete"])
def test_deactivation_or_deletion_stops_the_worker_at_once(connection, worker, http, company, action):
    cid = connection["id"]
    claimed = worker.claim().get_json()["connection"]
    if action == "deactivate":
        http.patch(f"/invoice-connections/{cid}", json={"active": False}, headers=company.headers)
    else:
        http.delete(f"/invoice-connections/{cid}", headers=company.headers)
    fence = claimed["fence"]
    assert_error(worker.post(f"/{cid}/heartbeat", {"fence": fence, "lease_seconds": 60}), 409,
                 "connection_inactive")
    assert_error(worker.post(f"/{cid}/poll-result", {"fence": fence, "outcome": "success", "checkpoint": {}}), 409,
                 "connection_inactive")
    authorize = worker.post(f"/{cid}/authorize-ingest", {"fence": fence})
    assert_error(authorize, 409 if action == "deactivate" else 404)
    assert_error(worker.post(f"/{cid}/authorize-ingest", {"fence": None}), 409 if action == "deactivate" else 404)
    if action == "deactivate":  # re-activation is due at once, and the old holder stays fenced off
        http.patch(f"/invoice-connections/{cid}", json={"active": True}, headers=company.headers)
        assert_error(worker.post(f"/{cid}/heartbeat", {"fence": fence, "lease_seconds": 60}), 409, "lease_lost")
        assert worker.claim().get_json()["connection"]["fence"] > fence


def test_authorize_ingest_answers_the_authoritative_company(connection, worker):
    cid = connection["id"]
    webhook = worker.post(f"/{cid}/authorize-ingest", {"fence": None})
    assert webhook.get_json() == {"id": cid, "client": connection["client"], "provider": "yooz"}
    claimed = worker.claim().get_json()["connection"]
    assert worker.post(f"/{cid}/authorize-ingest", {"fence": claimed["fence"]}).status_code == 200
    assert_error(worker.post(f"/{cid}/authorize-ingest", {"fence": claimed["fence"] + 1}), 409, "lease_lost")
    assert_error(worker.post(f"/{ObjectId()}/authorize-ingest", {"fence": None}), 404, "not_found")
    assert_error(worker.post("/nope/authorize-ingest", {"fence": None}), 404, "not_found")


def test_an_expired_lease_cannot_authorize_a_batch(connection, worker, db):
    claimed = worker.claim().get_json()["connection"]
    expire_lease(db, connection["id"])
    assert_error(worker.post(f"/{connection['id']}/authorize-ingest", {"fence": claimed["fence"]}), 409, "lease_lost")


def test_webhook_credentials(create, connection, worker, http, company, other_company):
    cid = connection["id"]
    body = worker.get(f"/{cid}/webhook-credentials").get_json()
    assert body == {"id": cid, "client": connection["client"], "provider": "yooz",
                    "webhook_secret": WEBHOOK_SECRET, "api_key": API_KEY}
    without = create(as_company=other_company).get_json()["id"]
    assert_error(worker.get(f"/{without}/webhook-credentials"), 409, "no_webhook_secret")
    http.patch(f"/invoice-connections/{cid}", json={"active": False}, headers=company.headers)
    assert_error(worker.get(f"/{cid}/webhook-credentials"), 409, "connection_inactive")
    http.delete(f"/invoice-connections/{cid}", headers=company.headers)
    assert_error(worker.get(f"/{cid}/webhook-credentials"), 404, "not_found")
    assert_error(worker.get(f"/{ObjectId()}/webhook-credentials"), 404, "not_found")


def test_webhook_result_counts_into_the_sync_status(connection, worker, http, company):
    cid = connection["id"]
    response = worker.post(f"/{cid}/webhook-result", {"created": 1, "updated": 2, "unchanged": 4})
    assert response.status_code == 204
    status = http.get(f"/invoice-connections/{cid}/sync", headers=company.headers).get_json()
    assert status["invoicesIngested"] == 3 and status["webhookEvents"] == 1 and status["lastWebhookAt"]
    assert_error(worker.post(f"/{cid}/webhook-result", {"created": -1}), 400, "validation_error")


@pytest.mark.parametrize("path, body", [
    ("/claim", {"worker": "w", "lease_seconds": 5}),
    ("/claim", {"worker": "", "lease_seconds": 60}),
    ("/claim", {"lease_seconds": 60}),
    ("/claim", {"worker": "w", "lease_seconds": "60"}),
    ("/{id}/heartbeat", {"fence": "1", "lease_seconds": 60}),
    ("/{id}/poll-result", {"fence": 1, "outcome": "maybe"}),
    ("/{id}/poll-result", {"fence": 1, "outcome": "failure"}),
    ("/{id}/poll-result", {"fence": 1, "outcome": "failure", "error": {"kind": "internal", "message": "x"},
                           "retry_after_seconds": -1}),
    ("/{id}/release", {}),
    ("/{id}/authorize-ingest", {"fence": "x"}),
])
def test_bad_internal_bodies_are_400_and_change_nothing(connection, worker, db, path, body):
    before = db.connections.find_one({"_id": ObjectId(connection["id"])})
    assert_error(worker.post(path.replace("{id}", connection["id"]), body), 400, "validation_error")
    assert db.connections.find_one({"_id": ObjectId(connection["id"])}) == before


def test_the_internal_api_takes_only_a_service_token(connection, http, company):
    cid = connection["id"]
    user = {"Authorization": f"Bearer {user_token(company.id)}"}
    for method, path in [("post", "/claim"), ("post", f"/{cid}/heartbeat"), ("post", f"/{cid}/poll-result"),
                         ("post", f"/{cid}/release"), ("post", f"/{cid}/authorize-ingest"),
                         ("get", f"/{cid}/webhook-credentials"), ("post", f"/{cid}/webhook-result")]:
        kwargs = {} if method == "get" else {"json": {}}
        assert_error(getattr(http, method)(f"/internal/connections{path}", **kwargs), 401)
        assert_error(getattr(http, method)(f"/internal/connections{path}", headers=user, **kwargs), 401)


def test_each_internal_route_serves_only_its_callers(connection, http):
    """A valid service token of another component reads no key or secret and takes no lease."""
    cid = connection["id"]
    worker_only = [("post", "/claim"), ("post", f"/{cid}/heartbeat"), ("post", f"/{cid}/poll-result"),
                   ("post", f"/{cid}/release"), ("get", f"/{cid}/webhook-credentials"),
                   ("post", f"/{cid}/webhook-result")]
    routes = [(route, INGEST_WORKER) for route in worker_only] + [(("post", f"/{cid}/authorize-ingest"),
                                                                    INVOICES_SERVICE)]
    for (method, path), caller in routes:
        for intruder in {INGEST_WORKER, INVOICES_SERVICE, "test", ""} - {caller}:
            headers = {"Authorization": f"Bearer {service_token(intruder or 'x' * 300)}"}
            kwargs = {} if method == "get" else {"json": {}}
            response = getattr(http, method)(f"/internal/connections{path}", headers=headers, **kwargs)
            assert_error(response, 403, "service_not_allowed")
            assert API_KEY not in response.get_data(as_text=True)


def test_a_ciphertext_moved_to_another_connection_does_not_open(create, other_company, worker, db, http):
    victim = create(webhookSecret=WEBHOOK_SECRET).get_json()
    thief = create(as_company=other_company, active=False).get_json()
    stolen = db.connections.find_one({"_id": ObjectId(victim["id"])})["secrets"]
    db.connections.update_one({"_id": ObjectId(thief["id"])}, {"$set": {"secrets": stolen}})
    http.patch(f"/invoice-connections/{victim['id']}", json={"active": False},
               headers={"Authorization": f"Bearer {user_token(ObjectId(victim['client']))}"})
    http.patch(f"/invoice-connections/{thief['id']}", json={"active": True}, headers=other_company.headers)
    assert_error(worker.get(f"/{thief['id']}/webhook-credentials"), 409, "undecryptable_secret")
    assert worker.claim().status_code == 204  # not handed out: recorded as a failure instead
    status = http.get(f"/invoice-connections/{thief['id']}/sync", headers=other_company.headers).get_json()
    assert status["lastError"]["kind"] == "internal" and "decrypted" in status["lastError"]["message"]


def test_the_claim_reads_only_live_connections_from_the_due_index(create, other_company, db):
    create()
    for _ in range(5):
        create(active=False)
        create(as_company=other_company, active=False)
    now = dt.datetime.now(dt.UTC)
    plan = db.command("explain", {"find": "connections", "filter": {
        "active": True, "deleted": False, "next_poll_at": {"$lte": now},
        "$or": [{"lease": None}, {"lease.expires_at": {"$lte": now}}]}, "sort": {"next_poll_at": 1},
        "hint": "due"}, verbosity="executionStats")  # the repository's claim query, hint included
    assert "'indexName': 'due'" in str(plan["queryPlanner"]["winningPlan"])
    assert plan["executionStats"]["totalKeysExamined"] == 1  # the partial index holds live connections only
    assert plan["executionStats"]["nReturned"] == 1
