"""Rules of a connection (its lease, what a change and a poll outcome decide) and how the API renders it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from bobdesk_shared.timeutil import utcnow
from bson import ObjectId
from connections_service import domain
from connections_service.api.rendering import connection_view, sync_view

NOW = dt.datetime(2024, 6, 22, 9, 0, tzinfo=dt.UTC)
SEALED = {"kid": "k1", "ct": b"opaque"}


def connection(**overrides):
    doc = domain.new_connection(ObjectId(), ObjectId(), "yooz", {"apiKey": SEALED}, True, NOW)
    doc.update(overrides)
    return doc


def test_view_has_exactly_the_seed_properties_and_no_secret():
    doc = connection(secrets={"apiKey": SEALED, "webhookSecret": SEALED})
    view = connection_view(doc)
    assert list(view) == ["id", "client", "provider", "active", "hasCredentials", "hasWebhookSecret",
                          "lastPolledAt", "createdAt", "updatedAt"]
    assert view["hasCredentials"] is True and view["hasWebhookSecret"] is True
    assert view["lastPolledAt"] is None
    assert view["createdAt"] == view["updatedAt"] == "2024-06-22T09:00:00.000Z"
    assert "opaque" not in json.dumps(view)


def test_view_tells_absent_secrets():
    view = connection_view(connection(secrets={}))
    assert view["hasCredentials"] is False and view["hasWebhookSecret"] is False


def test_a_new_active_connection_is_due_at_once_and_unleased():
    doc = connection()
    assert doc["next_poll_at"] == NOW and doc["lease"] is None and doc["fence"] == 0


def test_a_change_decides_the_fields_and_whether_the_lease_is_revoked():
    active, inactive = connection(), connection(active=False)
    assert domain.connection_changes(active, {"active": False}, NOW) == ({"updated_at": NOW, "active": False}, True)
    assert domain.connection_changes(inactive, {"active": True}, NOW) == (
        {"updated_at": NOW, "next_poll_at": NOW, "active": True}, False)
    assert domain.connection_changes(active, {"active": True}, NOW) == ({"updated_at": NOW, "active": True}, False)
    assert domain.connection_changes(active, {"apiKey": "k"}, NOW) == ({"updated_at": NOW, "next_poll_at": NOW},
                                                                       False)
    assert domain.connection_changes(active, {"webhookSecret": "s"}, NOW) == ({"updated_at": NOW}, False)


def test_a_lease_holds_only_with_its_fence_until_it_expires():
    doc = connection(fence=3, lease={"owner": "w", "claimed_at": NOW, "expires_at": NOW + dt.timedelta(seconds=30)})
    assert domain.lease_holds(doc, 3, NOW)
    assert not domain.lease_holds(doc, 2, NOW)
    assert not domain.lease_holds(doc, 3, NOW + dt.timedelta(seconds=30))
    assert not domain.lease_holds(connection(fence=3), 3, NOW)


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 10, 100])
def test_retry_delay_is_full_jitter_under_an_exponential_ceiling_capped_at_four_intervals(failures):
    ceiling = min(60 * 4, 30 * 2 ** (failures - 1))
    delays = [domain.retry_delay_seconds(failures, 60, None) for _ in range(500)]
    assert all(1 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the whole range


def test_retry_delay_never_comes_before_retry_after():
    assert all(domain.retry_delay_seconds(1, 60, 120) >= 120 for _ in range(100))


def leased(**overrides):
    values = {"fence": 4, "lease": {"owner": "w", "claimed_at": NOW, "expires_at": NOW + dt.timedelta(seconds=60)},
              "sync": {"consecutive_failures": 2, "invoices_ingested": 5}}
    return connection(**{**values, **overrides})


STATS = {"pages": 2, "created": 3, "updated": 1, "unchanged": 7, "rejected": 1}


def test_success_sets_last_polled_at_schedules_one_interval_later_and_releases():
    later = NOW + dt.timedelta(seconds=5)
    outcome = domain.poll_outcome(leased(), {"outcome": "success", "checkpoint": {"cursor": "c2"},
                                             "stats": STATS, "duration_ms": 40}, later, 300)
    assert outcome.succeeded_at == later and outcome.error is None
    assert outcome.next_poll_at == later + dt.timedelta(seconds=300)
    assert outcome.consecutive_failures == 0
    assert outcome.checkpoint == {"cursor": "c2"}
    assert outcome.run == {"outcome": "success", "at": later, "duration_ms": 40,
                           **dict.fromkeys(domain.STAT_NAMES, 0), **STATS}
    assert outcome.ingested == 4


def test_a_poll_now_asked_during_the_poll_makes_the_next_one_due_at_once():
    later = NOW + dt.timedelta(seconds=5)
    doc = leased(poll_requested_at=NOW + dt.timedelta(seconds=1))
    assert domain.poll_outcome(doc, {"outcome": "success", "checkpoint": {}}, later, 300).next_poll_at == later


def test_failure_records_the_error_counts_it_and_never_sets_last_polled_at():
    result = {"outcome": "failure", "error": {"kind": "throttled", "message": "429"}, "retry_after_seconds": 90}
    outcome = domain.poll_outcome(leased(), result, NOW, 60)
    assert outcome.succeeded_at is None
    assert outcome.consecutive_failures == 3
    assert outcome.error == {"kind": "throttled", "message": "429", "at": NOW}
    assert outcome.next_poll_at >= NOW + dt.timedelta(seconds=90)
    assert outcome.checkpoint is None


def test_a_failure_keeps_the_progress_made_before_it():
    result = {"outcome": "failure", "error": {"kind": "provider_error", "message": "503"},
              "checkpoint": {"cursor": "half"}}
    assert domain.poll_outcome(leased(), result, NOW, 60).checkpoint == {"cursor": "half"}


def test_sync_view_reports_the_last_run_error_and_schedule():
    doc = leased(last_polled_at=NOW, next_poll_at=NOW + dt.timedelta(seconds=60),
                 sync={"consecutive_failures": 1, "invoices_ingested": 12, "last_success_at": NOW,
                       "last_error": {"kind": "bad_credentials", "message": "401", "at": NOW},
                       "last_run": {"outcome": "failure", "at": NOW, "duration_ms": 12, **STATS}})
    view = sync_view(doc, NOW)
    assert view["polling"] is True
    assert view["lastError"] == {"kind": "bad_credentials", "message": "401", "at": "2024-06-22T09:00:00.000Z"}
    assert view["nextPollAt"] == "2024-06-22T09:01:00.000Z"
    assert view["invoicesIngested"] == 12 and view["consecutiveFailures"] == 1
    assert view["lastRun"]["durationMs"] == 12 and view["lastRun"]["rejected"] == 1
    assert sync_view({**doc, "active": False}, NOW)["nextPollAt"] is None


def test_sync_view_of_a_new_connection():
    view = sync_view(connection(), utcnow())
    assert view["lastRun"] is None and view["lastError"] is None and view["polling"] is False


def test_a_running_full_resync_counts_each_poll_and_the_first_success_ends_it():
    started = {**domain.new_resync(NOW), "started_at": NOW + dt.timedelta(seconds=1), "created": 2}
    failure = {"outcome": "failure", "error": {"kind": "provider_error", "message": "503"}, "stats": STATS}
    outcome = domain.poll_outcome(leased(resync=started), failure, NOW, 60)
    assert outcome.resync_counts == {**dict.fromkeys(domain.STAT_NAMES, 0), **STATS} and outcome.resync_done is None
    done = domain.poll_outcome(leased(resync=started), {"outcome": "success", "stats": STATS}, NOW, 60).resync_done
    assert done["finished_at"] == NOW and done["created"] == 2 + STATS["created"]
    pending = domain.poll_outcome(leased(resync=domain.new_resync(NOW)), {"outcome": "success"}, NOW, 60)
    assert pending.resync_counts is None and pending.resync_done is None  # not started: the next claim starts it
