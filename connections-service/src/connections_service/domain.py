"""Rules of a connection, free of I/O: a new connection, its lease, what a company's change and a poll's
outcome decide. Decisions only: the repository stores them, the API renders them."""

from __future__ import annotations

import dataclasses
import datetime as dt

from bobdesk_shared.retry import backoff_delay
from bobdesk_shared.timeutil import as_utc
from bson import ObjectId

RETRY_BASE_SECONDS = 30
MIN_RETRY_SECONDS = 1
STAT_NAMES = ("pages", "created", "updated", "unchanged", "cancelled", "rejected")


def new_connection(connection_id: ObjectId, client: ObjectId, provider: str, secrets: dict, active: bool,
                   now: dt.datetime) -> dict:
    """A new connection, due at once when active."""
    return {
        "_id": connection_id, "client": client, "provider": provider, "active": active, "deleted": False,
        "secrets": secrets, "created_at": now, "updated_at": now, "last_polled_at": None,
        "checkpoint_json": None, "next_poll_at": now, "lease": None, "fence": 0,
        "sync": {"consecutive_failures": 0, "invoices_ingested": 0},
    }


# --- leases ---------------------------------------------------------------------------------

def lease_is_live(doc: dict, now: dt.datetime) -> bool:
    lease = doc.get("lease")
    return bool(lease) and as_utc(lease["expires_at"]) > now


def lease_holds(doc: dict, fence: int, now: dt.datetime) -> bool:
    """True when the lease taken with `fence` is still the current, unexpired one."""
    return doc.get("fence") == fence and lease_is_live(doc, now)


# --- full resync -------------------------------------------------------------------------------
# A full resync makes the next poll start from no checkpoint: the adapter lists everything, and what
# the listing misses is cancelled. A connection's `resync` holds {requested_at, started_at, <counts>}
# while it runs; the poll that completes it moves it to the sync status' `last_resync`.

def new_resync(now: dt.datetime) -> dict:
    return {"requested_at": now, "started_at": None, **dict.fromkeys(STAT_NAMES, 0)}


def resync_pending(doc: dict) -> bool:
    """A resync asked and not yet started (or asked again since it started): the next claim starts it."""
    resync = doc.get("resync")
    return bool(resync) and (resync.get("started_at") is None
                             or as_utc(resync["requested_at"]) > as_utc(resync["started_at"]))


def _resync_progress(doc: dict, success: bool, stats: dict, now: dt.datetime) -> tuple[dict | None, dict | None]:
    """(counts to add to a running resync, the finished resync): a running resync counts every poll's
    figures; the first successful poll since it started ends it."""
    resync = doc.get("resync")
    if not resync or resync.get("started_at") is None or resync_pending(doc):
        return None, None
    if not success:
        return stats, None
    return None, {"requested_at": resync["requested_at"], "started_at": resync["started_at"], "finished_at": now,
                  **{name: int(resync.get(name, 0)) + stats[name] for name in STAT_NAMES}}


# --- poll results -----------------------------------------------------------------------------

def retry_delay_seconds(failures: int, poll_interval: int, retry_after: int | None) -> float:
    """The platform's backoff from 30 s, capped at 4 poll intervals, at least 1 s and never before `retry_after`."""
    return backoff_delay(failures, base=RETRY_BASE_SECONDS, cap=max(RETRY_BASE_SECONDS, poll_interval * 4),
                         floor=MIN_RETRY_SECONDS, at_least=float(retry_after or 0))


@dataclasses.dataclass(frozen=True)
class PollOutcome:
    """What a poll's result decides (`ConnectionRepository.record_poll` stores it); the lease is released."""

    run: dict  # outcome, at, duration_ms and the stats
    checkpoint: dict | None  # None: keep the stored one
    next_poll_at: dt.datetime
    consecutive_failures: int
    succeeded_at: dt.datetime | None  # a success alone sets last_polled_at (and updated_at: it is in the view)
    error: dict | None  # {kind, message, at} of a failure
    ingested: int  # invoices created or updated
    resync_counts: dict | None = None  # to add to the running full resync
    resync_done: dict | None = None  # the full resync this poll completed


def poll_outcome(doc: dict, result: dict, now: dt.datetime, poll_interval: int) -> PollOutcome:
    """A success schedules the next poll one interval later, or at once when "poll now" was asked
    during the poll; a failure backs off (`retry_delay_seconds`)."""
    sync = doc.get("sync") or {}
    stats = {name: int((result.get("stats") or {}).get(name, 0)) for name in STAT_NAMES}
    run = {"outcome": result["outcome"], "at": now, "duration_ms": result.get("duration_ms"), **stats}
    ingested = stats["created"] + stats["updated"]
    if result["outcome"] == "success":
        requested = doc.get("poll_requested_at")
        claimed = (doc.get("lease") or {}).get("claimed_at")
        asked_meanwhile = requested is not None and claimed is not None and as_utc(requested) > as_utc(claimed)
        next_poll_at = now if asked_meanwhile else now + dt.timedelta(seconds=poll_interval)
        return PollOutcome(run, result.get("checkpoint"), next_poll_at, 0, now, None, ingested,
                           *_resync_progress(doc, True, stats, now))
    failures = int(sync.get("consecutive_failures", 0)) + 1
    error = {"kind": result["error"]["kind"], "message": result["error"]["message"], "at": now}
    delay = retry_delay_seconds(failures, poll_interval, result.get("retry_after_seconds"))
    return PollOutcome(run, result.get("checkpoint"), now + dt.timedelta(seconds=delay), failures, None, error,
                       ingested, *_resync_progress(doc, False, stats, now))


def ingested(counts: dict) -> int:
    """The invoices a webhook delivery created or updated."""
    return int(counts.get("created", 0)) + int(counts.get("updated", 0))


def connection_changes(current: dict, changes: dict, now: dt.datetime) -> tuple[dict, bool]:
    """The fields a company's PATCH sets besides its secrets, and whether it revokes the lease."""
    fields: dict = {"updated_at": now}
    if "apiKey" in changes or (changes.get("active") is True and not current["active"]):
        # A new key or a re-activation is worth a poll at once (a bad key waits for no backoff).
        fields["next_poll_at"] = now
    if "active" in changes:
        fields["active"] = changes["active"]
    # Deactivating takes the lease away for good: the holder's next call is refused.
    return fields, changes.get("active") is False
