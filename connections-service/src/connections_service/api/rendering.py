"""What the APIs answer about a connection: the company's view (exactly the nine properties of the
connection resource; secrets only as presence flags), its sync status, and a worker's claim."""

from __future__ import annotations

import datetime as dt

from bobdesk_shared.timeutil import iso_ms

from ..domain import STAT_NAMES, lease_is_live, resync_pending
from ..services import Claim


def connection_view(doc: dict) -> dict:
    """The connection resource: its nine properties; secrets only as presence flags."""
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


def claim_view(claim: Claim) -> dict:
    doc = claim.doc
    return {
        "id": str(doc["_id"]),
        "client": str(doc["client"]),
        "provider": doc["provider"],
        "api_key": claim.api_key,
        "checkpoint": claim.checkpoint,
        "fence": doc["fence"],
        "lease_expires_at": iso_ms(doc["lease"]["expires_at"]),
    }


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


def _resync_view(resync: dict | None, state: str) -> dict | None:
    if not resync:
        return None
    return {"state": state, "requestedAt": iso_ms(resync["requested_at"]),
            "startedAt": iso_ms(resync.get("started_at")), "finishedAt": iso_ms(resync.get("finished_at")),
            **{name: resync.get(name, 0) for name in STAT_NAMES}}
