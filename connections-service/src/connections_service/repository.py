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

from bobdesk_shared.mongo import ensure_indexes
from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

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

    def update_for(self, client: ObjectId, connection_id: ObjectId, update: dict) -> dict | None:
        """The updated document, or None when it is not the company's or is deleted."""
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

    def update_leased(self, connection_id: ObjectId, fence: int, update: dict, *,
                      live_lease_at: dt.datetime | None = None) -> dict | None:
        """Apply `update` only while the connection is live and leased under `fence` (the fencing
        check and the write are one atomic operation); the document after, or None when refused."""
        query = {"_id": connection_id, **LIVE, "fence": fence, "lease": {"$ne": None}}
        if live_lease_at is not None:
            query["lease.expires_at"] = {"$gt": live_lease_at}
        return self.collection.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    def update_by_id(self, connection_id: ObjectId, update: dict, *, live_only: bool = True) -> dict | None:
        query = {"_id": connection_id, **LIVE} if live_only else {"_id": connection_id, "deleted": False}
        return self.collection.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    # --- key rotation ----------------------------------------------------------------------

    def with_secrets(self):
        return self.collection.find({"secrets": {"$exists": True, "$ne": {}}}, {"secrets": 1})

    def replace_secrets(self, connection_id: ObjectId, old: dict, new: dict) -> bool:
        """Swap the sealed secrets only if nobody changed them meanwhile (a PATCH wins)."""
        query = {"_id": connection_id, **{f"secrets.{field}.ct": sealed["ct"] for field, sealed in old.items()}}
        update = {"$set": {f"secrets.{field}": sealed for field, sealed in new.items()}}
        return self.collection.update_one(query, update).modified_count == 1
