"""pymongo access to `CONNECTIONS_DB.connections`.

A connection document:

    _id, client (ObjectId), provider, active, deleted, deleted_at,
    secrets: {apiKey: {kid, ct}, webhookSecret: {kid, ct}}   (sealed, see services.SecretBox)
    created_at, updated_at, last_polled_at,
    checkpoint_json            the provider's checkpoint, as the worker's JSON text
    next_poll_at               when the connection is due; "now" for a new or re-activated one
    poll_requested_at          the last "poll now" of the company
    lease: {owner, expires_at, claimed_at} | null,  fence (int, +1 at every claim and revocation)
    sync: {last_success_at, last_error {kind, message, at}, consecutive_failures,
           invoices_ingested, last_run {...}, last_webhook_at}

Indexes and what each serves:
- `one_active_per_provider` (client, provider), unique, partial on {active: true, deleted: false}:
  the database itself refuses a second active connection of a provider in a company, whatever
  the concurrency; deleted and inactive connections never block.
- `client_id` (client, _id): the company's list, in creation order.
- `due` (next_poll_at), partial on {active: true, deleted: false}: the claim of the most overdue
  connection reads only active connections, oldest first.
Every other access is by `_id`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from bobdesk_shared.mongo import ensure_indexes
from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .domain import STAT_NAMES, PollOutcome

LIVE = {"active": True, "deleted": False}

INDEXES = [
    IndexModel([("client", ASCENDING), ("provider", ASCENDING)], name="one_active_per_provider",
               unique=True, partialFilterExpression=LIVE),
    IndexModel([("client", ASCENDING), ("_id", ASCENDING)], name="client_id"),
    IndexModel([("next_poll_at", ASCENDING)], name="due", partialFilterExpression=LIVE),
]


class ActiveConnectionExists(Exception):
    """The unique index refused a second active connection of the same provider."""


@dataclasses.dataclass
class ConnectionRepository:
    db: Database

    @property
    def collection(self) -> Collection:
        return self.db["connections"]

    def ensure_indexes(self) -> list[str]:
        return ensure_indexes(self.collection, INDEXES)

    # --- the company's view ----------------------------------------------------------------

    def insert(self, doc: dict) -> None:
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise ActiveConnectionExists() from None

    def list_for(self, client: ObjectId) -> list[dict]:
        return list(self.collection.find({"client": client, "deleted": False}, sort=[("_id", ASCENDING)],
                                         hint="client_id"))

    def get_for(self, client: ObjectId, connection_id: ObjectId) -> dict | None:
        return self.collection.find_one({"_id": connection_id, "client": client, "deleted": False})

    def update_for(self, client: ObjectId, connection_id: ObjectId, fields: dict, *, secrets: dict | None = None,
                   revoke_lease: bool = False) -> dict | None:
        """Set `fields` and the sealed `secrets` (by name); the updated document, or None when it is not
        the company's or is deleted."""
        sets = {**fields, **{f"secrets.{name}": sealed for name, sealed in (secrets or {}).items()}}
        return self._update_for(client, connection_id, _revoking({"$set": sets}) if revoke_lease else {"$set": sets})

    def soft_delete(self, client: ObjectId, connection_id: ObjectId, now: dt.datetime) -> dict | None:
        """Deleted, inactive, its secrets erased and its lease revoked; the record stays for the audit."""
        return self._update_for(client, connection_id, _revoking({
            "$set": {"deleted": True, "deleted_at": now, "active": False, "updated_at": now},
            "$unset": {"secrets": ""}}))

    def _update_for(self, client: ObjectId, connection_id: ObjectId, update: dict) -> dict | None:
        try:
            return self.collection.find_one_and_update(
                {"_id": connection_id, "client": client, "deleted": False}, update,
                return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            raise ActiveConnectionExists() from None

    # --- the worker's view -----------------------------------------------------------------

    def get(self, connection_id: ObjectId) -> dict | None:
        return self.collection.find_one({"_id": connection_id})

    def claim_due(self, now: dt.datetime, lease: dict) -> dict | None:
        """Lease the most overdue due connection whose lease is free or expired (one atomic write)."""
        return self.collection.find_one_and_update(
            {**LIVE, "next_poll_at": {"$lte": now},
             "$or": [{"lease": None}, {"lease.expires_at": {"$lte": now}}]},
            {"$set": {"lease": lease}, "$inc": {"fence": 1}},
            sort=[("next_poll_at", ASCENDING)], hint="due", return_document=ReturnDocument.AFTER)

    @staticmethod
    def checkpoint_of(doc: dict) -> dict | None:
        """The provider's checkpoint, stored as the worker's JSON text (the services never read it)."""
        stored = doc.get("checkpoint_json")
        return json.loads(stored) if stored else None

    def renew_lease(self, connection_id: ObjectId, fence: int, expires_at: dt.datetime,
                    checkpoint: dict | None) -> dict | None:
        sets = {"lease.expires_at": expires_at}
        if checkpoint is not None:
            sets["checkpoint_json"] = _checkpoint_json(checkpoint)
        return self._update_leased(connection_id, fence, {"$set": sets})

    def release_lease(self, connection_id: ObjectId, fence: int) -> dict | None:
        return self._update_leased(connection_id, fence, {"$set": {"lease": None}})

    def record_poll(self, connection_id: ObjectId, fence: int, outcome: PollOutcome) -> dict | None:
        """Store a poll's outcome and release the lease, while it is still held under `fence`."""
        sets: dict = {"lease": None, "sync.last_run": outcome.run, "next_poll_at": outcome.next_poll_at,
                      "sync.consecutive_failures": outcome.consecutive_failures}
        if outcome.checkpoint is not None:
            sets["checkpoint_json"] = _checkpoint_json(outcome.checkpoint)
        if outcome.succeeded_at is not None:
            sets.update({"last_polled_at": outcome.succeeded_at, "updated_at": outcome.succeeded_at,
                         "sync.last_success_at": outcome.succeeded_at})
        if outcome.error is not None:
            sets["sync.last_error"] = outcome.error
        update: dict = {"$set": sets, "$inc": {"sync.invoices_ingested": outcome.ingested}}
        if outcome.resync_counts:
            update["$inc"].update({f"resync.{name}": count for name, count in outcome.resync_counts.items()})
        if outcome.resync_done is not None:
            sets["sync.last_resync"] = outcome.resync_done
            update["$unset"] = {"resync": ""}
        return self._update_leased(connection_id, fence, update)

    def start_resync(self, connection_id: ObjectId, fence: int, now: dt.datetime) -> dict | None:
        """The claimed connection's full resync begins: no checkpoint, counts from zero."""
        return self._update_leased(connection_id, fence, {"$set": {
            "resync.started_at": now, "checkpoint_json": None, **{f"resync.{name}": 0 for name in STAT_NAMES}}})

    def count_webhook(self, connection_id: ObjectId, ingested: int, at: dt.datetime) -> dict | None:
        """Count a webhook delivery into the sync status (of a connection not deleted)."""
        return self.collection.find_one_and_update(
            {"_id": connection_id, "deleted": False},
            {"$set": {"sync.last_webhook_at": at},
             "$inc": {"sync.invoices_ingested": ingested, "sync.webhook_events": 1}},
            return_document=ReturnDocument.AFTER)

    def _update_leased(self, connection_id: ObjectId, fence: int, update: dict) -> dict | None:
        """Apply `update` only while the connection is live and leased under `fence` (the fencing
        check and the write are one atomic operation); the document after, or None when refused."""
        return self.collection.find_one_and_update(
            {"_id": connection_id, **LIVE, "fence": fence, "lease": {"$ne": None}}, update,
            return_document=ReturnDocument.AFTER)

    # --- key rotation ----------------------------------------------------------------------

    def with_secrets(self):
        return self.collection.find({"secrets": {"$exists": True, "$ne": {}}}, {"secrets": 1})

    def replace_secrets(self, connection_id: ObjectId, old: dict, new: dict) -> bool:
        """Swap the sealed secrets only if nobody changed them meanwhile (a PATCH wins)."""
        query = {"_id": connection_id, **{f"secrets.{field}.ct": sealed["ct"] for field, sealed in old.items()}}
        update = {"$set": {f"secrets.{field}": sealed for field, sealed in new.items()}}
        return self.collection.update_one(query, update).modified_count == 1


def _revoking(update: dict) -> dict:
    """`update`, also taking the lease away from whoever holds it, for good: the fence moves, so the
    holder's next heartbeat, batch or result is refused."""
    return {**update, "$set": {**update.get("$set", {}), "lease": None},
            "$inc": {**update.get("$inc", {}), "fence": 1}}


def _checkpoint_json(checkpoint: dict) -> str:
    return json.dumps(checkpoint, separators=(",", ":"))
