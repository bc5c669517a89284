"""Rules of a connection, free of I/O: its views, its lease, how a poll's outcome schedules the next."""

from __future__ import annotations

import datetime as dt
import json
import random

from bobdesk_shared.timeutil import as_utc, iso_ms
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


def connection_view(doc: dict) -> dict:
    """Exactly the nine properties of the seed; secrets only as presence flags."""
    secrets = doc.get("secrets") or {}
    return {
        "id": str(doc["_id"]),
        "client": str(doc["client"]),
        "provider": doc["provider"],
        "active": doc["active"],
        "hasCredentials": "apiKey" in secrets,
        "hasWebhookSecret": "webhookSecret" in secrets,
        "lastPolledAt": iso_ms(doc.get("last_polled_at")),
        "createdAt": iso_ms(doc["created_at"]),
        "updatedAt": iso_ms(doc["updated_at"]),
    }


# --- leases ---------------------------------------------------------------------------------

def with_lease_revoked(update: dict) -> dict:
    """`update`, also taking the lease away from whoever holds it, for good: the fence moves, so
    the holder's next heartbeat, batch or result is refused."""
    return {**update, "$set": {**update.get("$set", {}), "lease": None},
            "$inc": {**update.get("$inc", {}), "fence": 1}}


def lease_is_live(doc: dict, now: dt.datetime) -> bool:
    lease = doc.get("lease")
    return bool(lease) and as_utc(lease["expires_at"]) > now


def lease_holds(doc: dict, fence: int, now: dt.datetime) -> bool:
    """True when the lease taken with `fence` is still the current, unexpired one."""
    return doc.get("fence") == fence and lease_is_live(doc, now)


def claim_view(doc: dict, api_key: str) -> dict:
    checkpoint = doc.get("checkpoint_json")
    return {
        "id": str(doc["_id"]),
        "client": str(doc["client"]),
        "provider": doc["provider"],
        "api_key": api_key,
        "checkpoint": json.loads(checkpoint) if checkpoint else None,
        "fence": doc["fence"],
        "lease_expires_at": iso_ms(doc["lease"]["expires_at"]),
    }


# --- full resync -------------------------------------------------------------------------------
# A full resync makes the next poll start from no checkpoint: the adapter lists everything, and what
# the listing misses is cancelled. `resync` holds {requested_at, started_at, <counts>} while it runs;
# the poll that completes it moves it to `sync.last_resync`.

def resync_request(now: dt.datetime) -> dict:
    return {"$set": {"resync": {"requested_at": now, "started_at": None, **dict.fromkeys(STAT_NAMES, 0)}}}


def resync_pending(doc: dict) -> bool:
    """A resync asked and not yet started (or asked again since it started): the next claim starts it."""
    resync = doc.get("resync")
    return bool(resync) and (resync.get("started_at") is None
                             or as_utc(resync["requested_at"]) > as_utc(resync["started_at"]))


def resync_start(now: dt.datetime) -> dict:
    return {"$set": {"resync.started_at": now, "checkpoint_json": None, **{f"resync.{n}": 0 for n in STAT_NAMES}}}


def _resync_result(doc: dict, success: bool, stats: dict, now: dt.datetime) -> dict:
    """A running resync counts every poll's figures; the first successful poll since it started ends it."""
    resync = doc.get("resync")
    if not resync or resync.get("started_at") is None or resync_pending(doc):
        return {}
    if not success:
        return {"$inc": {f"resync.{name}": stats[name] for name in STAT_NAMES}}
    done = {"requested_at": resync["requested_at"], "started_at": resync["started_at"], "finished_at": now,
            **{name: int(resync.get(name, 0)) + stats[name] for name in STAT_NAMES}}
    return {"$set": {"sync.last_resync": done}, "$unset": {"resync": ""}}


def _resync_view(resync: dict | None, state: str) -> dict | None:
    if not resync:
        return None
    return {"state": state, "requestedAt": iso_ms(resync["requested_at"]),
            "startedAt": iso_ms(resync.get("started_at")), "finishedAt": iso_ms(resync.get("finished_at")),
            **{name: resync.get(name, 0) for name in STAT_NAMES}}


# --- poll results -----------------------------------------------------------------------------

def retry_delay_seconds(failures: int, poll_interval: int, retry_after: int | None,
                        rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped at 4 poll intervals, never before `retry_after`."""
    rng = rng or random
    cap = max(RETRY_BASE_SECONDS, poll_interval * 4)
    ceiling = min(cap, RETRY_BASE_SECONDS * 2 ** min(max(0, failures - 1), 32))
    delay = rng.uniform(MIN_RETRY_SECONDS, max(MIN_RETRY_SECONDS, ceiling))
    return max(delay, float(retry_after or 0))


def poll_result_update(doc: dict, result: dict, now: dt.datetime, poll_interval: int,
                       rng: random.Random | None = None) -> dict:
    """The update recording a poll's outcome; it schedules the next poll and releases the lease.

    Success alone sets `last_polled_at` (and `updated_at` with it: `lastPolledAt` is part of the
    view). A "poll now" asked during the poll makes the next one due at once."""
    sync = doc.get("sync") or {}
    stats = {name: int((result.get("stats") or {}).get(name, 0)) for name in STAT_NAMES}
    run = {"outcome": result["outcome"], "at": now, "duration_ms": result.get("duration_ms"), **stats}
    sets: dict = {"lease": None, "sync.last_run": run}
    if result.get("checkpoint") is not None:
        sets["checkpoint_json"] = json.dumps(result["checkpoint"], separators=(",", ":"))
    if result["outcome"] == "success":
        sets.update({"last_polled_at": now, "updated_at": now, "sync.last_success_at": now,
                     "sync.consecutive_failures": 0})
        requested = doc.get("poll_requested_at")
        claimed = (doc.get("lease") or {}).get("claimed_at")
        asked_meanwhile = requested is not None and claimed is not None and as_utc(requested) > as_utc(claimed)
        sets["next_poll_at"] = now if asked_meanwhile else now + dt.timedelta(seconds=poll_interval)
    else:
        failures = int(sync.get("consecutive_failures", 0)) + 1
        error = result["error"]
        sets.update({"sync.consecutive_failures": failures,
                     "sync.last_error": {"kind": error["kind"], "message": error["message"], "at": now}})
        delay = retry_delay_seconds(failures, poll_interval, result.get("retry_after_seconds"), rng)
        sets["next_poll_at"] = now + dt.timedelta(seconds=delay)
    resync = _resync_result(doc, result["outcome"] == "success", stats, now)
    update = {"$set": {**sets, **resync.get("$set", {})},
              "$inc": {"sync.invoices_ingested": stats["created"] + stats["updated"], **resync.get("$inc", {})}}
    return {**update, **({"$unset": resync["$unset"]} if "$unset" in resync else {})}


def webhook_result_update(counts: dict, now: dt.datetime) -> dict:
    return {"$set": {"sync.last_webhook_at": now},
            "$inc": {"sync.invoices_ingested": int(counts.get("created", 0)) + int(counts.get("updated", 0)),
                     "sync.webhook_events": 1}}


def sync_view(doc: dict, now: dt.datetime) -> dict:
    """What the company sees of its connection's synchronisation (`GET /invoice-connections/:id/sync`)."""
    sync = doc.get("sync") or {}
    error = sync.get("last_error")
    run = sync.get("last_run")
    return {
        "connectionId": str(doc["_id"]),
        "active": doc["active"],
        "polling": lease_is_live(doc, now),
        "lastPolledAt": iso_ms(doc.get("last_polled_at")),
        "lastSuccessAt": iso_ms(sync.get("last_success_at")),
        "lastError": None if not error else {"kind": error["kind"], "message": error["message"],
                                             "at": iso_ms(error["at"])},
        "consecutiveFailures": sync.get("consecutive_failures", 0),
        "nextPollAt": iso_ms(doc.get("next_poll_at")) if doc["active"] else None,
        "invoicesIngested": sync.get("invoices_ingested", 0),
        "lastRun": None if not run else {**{name: run.get(name, 0) for name in STAT_NAMES},
                                         "outcome": run["outcome"], "at": iso_ms(run["at"]),
                                         "durationMs": run.get("duration_ms")},
        "lastWebhookAt": iso_ms(sync.get("last_webhook_at")),
        "webhookEvents": sync.get("webhook_events", 0),
        "resync": _resync_view(doc.get("resync"), "requested" if resync_pending(doc) else "running"),
        "lastResync": _resync_view(sync.get("last_resync"), "done"),
    }
