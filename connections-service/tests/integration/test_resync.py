"""Full resync: `POST /invoice-connections/{id}/sync {"full": true}` makes the next poll start from no
checkpoint; the sync status shows it requested, running with its counts, then done."""

from __future__ import annotations

import pytest

from ..conftest import WEBHOOK_SECRET

STATS = {"pages": 3, "created": 1, "updated": 2, "unchanged": 40, "cancelled": 4, "rejected": 1}


@pytest.fixture
def connection(create):
    return create(webhookSecret=WEBHOOK_SECRET).get_json()


def succeed(worker, cid, fence, checkpoint, stats=None):
    answer = worker.post(f"/{cid}/poll-result", {"fence": fence, "outcome": "success", "checkpoint": checkpoint,
                                                 "stats": stats or {}, "duration_ms": 5})
    assert answer.status_code == 200, answer.get_json()


def status(http, company, cid):
    return http.get(f"/invoice-connections/{cid}/sync", headers=company.headers).get_json()


def test_a_full_resync_starts_from_no_checkpoint_counts_its_polls_and_ends(connection, worker, http, company):
    cid = connection["id"]
    succeed(worker, cid, worker.claim().get_json()["connection"]["fence"], {"mark": 1})
    asked = http.post(f"/invoice-connections/{cid}/sync", json={"full": True}, headers=company.headers)
    assert asked.status_code == 202 and asked.get_json()["resync"]["state"] == "requested"
    claimed = worker.claim().get_json()["connection"]
    assert claimed["checkpoint"] is None  # the listing starts over
    assert status(http, company, cid)["resync"]["state"] == "running"
    failed = worker.post(f"/{cid}/poll-result", {
        "fence": claimed["fence"], "outcome": "failure", "retry_after_seconds": 0, "checkpoint": {"mark": 2},
        "error": {"kind": "provider_error", "message": "5xx"}, "stats": STATS})
    assert failed.status_code == 200
    running = status(http, company, cid)["resync"]
    assert (running["state"], running["cancelled"], running["unchanged"]) == ("running", 4, 40)
    # The resync's next poll resumes its own listing: the checkpoint it stored is kept.
    http.post(f"/invoice-connections/{cid}/sync", headers=company.headers)
    resumed = worker.claim().get_json()["connection"]
    assert resumed["checkpoint"] == {"mark": 2}
    succeed(worker, cid, resumed["fence"], {"mark": 3}, STATS)
    done = status(http, company, cid)
    assert done["resync"] is None and done["lastResync"]["state"] == "done"
    assert (done["lastResync"]["cancelled"], done["lastResync"]["pages"]) == (8, 6)
    assert done["lastResync"]["finishedAt"] >= done["lastResync"]["startedAt"] >= done["lastResync"]["requestedAt"]
    assert done["lastRun"]["cancelled"] == 4


def test_a_resync_asked_during_a_poll_waits_for_the_next_one(connection, worker, http, company):
    cid = connection["id"]
    claimed = worker.claim().get_json()["connection"]
    http.post(f"/invoice-connections/{cid}/sync", json={"full": True}, headers=company.headers)
    succeed(worker, cid, claimed["fence"], {"mark": "old"})  # the poll running meanwhile is not the resync
    assert status(http, company, cid)["resync"]["state"] == "requested"
    assert worker.claim().get_json()["connection"]["checkpoint"] is None


def test_without_a_body_it_is_poll_now_and_a_bad_body_is_400(connection, worker, http, company):
    cid = connection["id"]
    succeed(worker, cid, worker.claim().get_json()["connection"]["fence"], {"mark": 1})
    assert http.post(f"/invoice-connections/{cid}/sync", headers=company.headers).status_code == 202
    assert worker.claim().get_json()["connection"]["checkpoint"] == {"mark": 1}
    for body in ({"full": "yes"}, {"full": 1}, {"other": True}, [True]):
        answer = http.post(f"/invoice-connections/{cid}/sync", json=body, headers=company.headers)
        assert answer.status_code == 400, body
    assert status(http, company, cid)["resync"] is None
