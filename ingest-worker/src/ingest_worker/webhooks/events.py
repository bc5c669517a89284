"""Accepted webhook events in INGEST_DB: the replay guard and the work queue at once.

`webhook_events` holds one document per (provider, connection, event id), under
a unique index, so a replayed event is recognised and changes nothing. An event
is `pending` until processed; `next_attempt_at` is both its retry time and its
lease: claiming it pushes `next_attempt_at` by the lease, so a processor that
dies leaves the event to be claimed again when the lease runs out, and nothing
accepted is lost. A finished event keeps its id for the retention period (TTL
index on `expires_at`, far longer than the 300 s a signature stays valid).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading

from bobdesk_shared.mongo import ensure_indexes
from bobdesk_shared.timeutil import utcnow
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from ..providers.base import WebhookEvent

PENDING, DONE, FAILED = "pending", "done", "failed"


class EventStore:
    def __init__(self, db: Database, retention_seconds: int):
        self.events = db["webhook_events"]
        self.retention = dt.timedelta(seconds=retention_seconds)
        self._indexed = False
        self._lock = threading.Lock()

    def ensure_indexes(self) -> None:
        """Create the indexes once per process (before the first write: the replay guard needs the unique one)."""
        if self._indexed:
            return
        with self._lock:
            if not self._indexed:
                self._create_indexes()
                self._indexed = True

    def _create_indexes(self) -> None:
        ensure_indexes(self.events, [
            IndexModel([("provider", ASCENDING), ("connection", ASCENDING), ("event_id", ASCENDING)],
                       unique=True, name="event_once"),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="queue"),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="retention"),
        ])

    def record(self, provider: str, connection_id: str, event: WebhookEvent) -> bool:
        """Store a verified event as pending; False when this event id was already recorded."""
        self.ensure_indexes()
        now = utcnow()
        try:
            self.events.insert_one({
                "provider": provider, "connection": connection_id, "event_id": event.id, "type": event.type,
                "invoice_id": event.invoice_id, "event_created_at": event.created_at, "received_at": now,
                "status": PENDING, "next_attempt_at": now, "attempts": 0,
            })
        except DuplicateKeyError:
            return False
        return True

    def claim(self, owner: str, lease_seconds: float) -> dict | None:
        """The most overdue pending event, leased to `owner` (its `claim` token guards later updates)."""
        self.ensure_indexes()
        now = utcnow()
        return self.events.find_one_and_update(
            {"status": PENDING, "next_attempt_at": {"$lte": now}},
            {"$set": {"next_attempt_at": now + dt.timedelta(seconds=lease_seconds), "claimed_by": owner,
                      "claim": secrets.token_hex(8)},
             "$inc": {"attempts": 1}},
            sort=[("status", ASCENDING), ("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    def finish(self, event: dict, outcome: str, detail: str | None = None) -> None:
        self._settle(event, DONE, outcome, detail)

    def fail(self, event: dict, detail: str) -> None:
        self._settle(event, FAILED, "failed", detail)

    def _settle(self, event: dict, status: str, outcome: str, detail: str | None) -> None:
        now = utcnow()
        self.events.update_one(
            {"_id": event["_id"], "claim": event["claim"]},
            {"$set": {"status": status, "outcome": outcome, "detail": detail, "settled_at": now,
                      "expires_at": now + self.retention},
             "$unset": {"next_attempt_at": "", "claim": ""}},
        )

    def retry_later(self, event: dict, delay_seconds: float, detail: str) -> None:
        self.events.update_one(
            {"_id": event["_id"], "claim": event["claim"]},
            {"$set": {"next_attempt_at": utcnow() + dt.timedelta(seconds=delay_seconds), "detail": detail},
             "$unset": {"claim": ""}},
        )
