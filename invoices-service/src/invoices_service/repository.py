"""pymongo access: the invoices collection (INVOICES_DB), the platform's contractors and tickets
(PLATFORM_DB, read only), and the per-company reconciliation fingerprints.

Indexes of `invoices` and the requests each one serves (see also README "Indexes"); every one
starts with `client` because every request is scoped to one company:

- `client_id` (client, _id): the default list; keyset pagination (`_id > cursor`);
  `created_after`/`created_before` (ids are minted with the creation second, so a created_at
  range is also an `_id` range) and `provider` (a company has one or two providers: a residual
  filter on this range).
- `client_platform_id_provider` (client, invoice_platform_id, provider), unique: idempotent
  ingestion (lookup by `$in`, no duplicate under concurrent batches) and `invoice_platform_id=`.
- `client_state_id` (client, state, _id): `association=unmatched|linked`, sorted by `_id`.
- `client_number_id` (client, number, _id): `number=`.
- `client_supplier_siret_id` (client, supplier.siret, _id): `supplier_siret=`.
- `client_supplier_group` (client, supplier.siret, supplier.siren, supplier_id, state, manual_link):
  reconcile's supplier groups (a `$group` it covers) and its re-match of a stale group (every
  field of those filters is in the index, which the embedded server's planner needs).
- `client_issue_date` (client, issue_date): `issued_after`/`issued_before`.
- `client_updated_at` (client, updated_at): `updated_after`/`updated_before`.
- `client_unmatched_reference` (client, order_reference), partial on unmatched automatic
  invoices: reconcile's distinct unlinked references (bounded by them, not by invoice count).

The embedded server's workarounds (index hints, the provider checked in Python) live in
`embedded_server.py`, and only there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import struct

from bobdesk_shared.mongo import ensure_indexes
from bson import ObjectId
from prometheus_client import Histogram
from pymongo import ASCENDING, IndexModel, InsertOne, ReturnDocument, UpdateMany, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from .domain import CANCELLED, LINKED, UNMATCHED, Contractor, ListFilters, SupplierGroup, Ticket
from .embedded_server import list_hint, of_provider, range_is_empty

DUPLICATE_KEY = 11000
# Automatic invoices waiting for a ticket: the partial index's filter and its queries' base.
UNLINKED_AUTOMATIC = {"state": UNMATCHED, "manual_link": False, "order_reference": {"$type": "string"}}

INDEXES = [
    IndexModel([("client", ASCENDING), ("_id", ASCENDING)], name="client_id"),
    IndexModel([("client", ASCENDING), ("invoice_platform_id", ASCENDING), ("provider", ASCENDING)],
               name="client_platform_id_provider", unique=True),
    IndexModel([("client", ASCENDING), ("state", ASCENDING), ("_id", ASCENDING)], name="client_state_id"),
    IndexModel([("client", ASCENDING), ("number", ASCENDING), ("_id", ASCENDING)], name="client_number_id"),
    IndexModel([("client", ASCENDING), ("supplier.siret", ASCENDING), ("_id", ASCENDING)],
               name="client_supplier_siret_id"),
    IndexModel([("client", ASCENDING), ("issue_date", ASCENDING)], name="client_issue_date"),
    IndexModel([("client", ASCENDING), ("updated_at", ASCENDING)], name="client_updated_at"),
    IndexModel([("client", ASCENDING), ("supplier.siret", ASCENDING), ("supplier.siren", ASCENDING),
                ("supplier_id", ASCENDING), ("state", ASCENDING), ("manual_link", ASCENDING)],
               name="client_supplier_group"),
    IndexModel([("client", ASCENDING), ("order_reference", ASCENDING)], name="client_unmatched_reference",
               partialFilterExpression=UNLINKED_AUTOMATIC),
]

# What a client sees of an invoice (api/rendering.py); every list and read projects only these.
PUBLIC_PROJECTION = {
    "provider": 1, "invoice_platform_id": 1, "number": 1, "issue_date": 1, "due_date": 1, "currency": 1,
    "amounts": 1, "supplier.name": 1, "supplier.siret": 1, "state": 1, "ticket_id": 1, "supplier_id": 1,
    "created_at": 1, "updated_at": 1,
}

# A list page's query as the service waits for it: the round trip and the driver's part (the command,
# the decoding, the cursor's iteration), which `mongo_command_duration_seconds` leaves out in part.
LIST_QUERY_SECONDS = Histogram("invoices_list_query_duration_seconds", "A list page's query, driver included",
                               buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

# What ingestion compares to decide created/updated/unchanged (never the raw payload or lines).
INGEST_PROJECTION = {
    "invoice_platform_id": 1, "provider": 1, "rev": 1, "content_hash": 1, "connection": 1, "supplier_id": 1,
    "ticket_id": 1, "state": 1, "manual_link": 1, "deleted": 1, "number": 1, "issue_date": 1, "due_date": 1,
    "currency": 1, "amounts": 1, "supplier.name": 1, "supplier.siret": 1, "listing": 1,
}


def mint_id(created_at: dt.datetime) -> ObjectId:
    """A fresh ObjectId whose timestamp is `created_at`'s second, so created_at ranges are _id ranges."""
    return ObjectId(struct.pack(">I", int(created_at.timestamp())) + ObjectId().binary[4:])


# An ObjectId carries 32-bit seconds: no id is minted after 2106-02-07T06:28:15Z.
_LAST_ID_SECOND = 0xFFFFFFFF


def _first_id_of(second: int) -> ObjectId | None:
    return None if second > _LAST_ID_SECOND else ObjectId(struct.pack(">I", second) + bytes(8))


def id_floor(at: dt.datetime) -> ObjectId | None:
    """The smallest id minted at `at`'s second or later; None when `at` is past the last second
    an id can carry (no id is that late)."""
    return _first_id_of(int(at.timestamp()))


def id_ceiling(at: dt.datetime) -> ObjectId | None:
    """The smallest id minted after `at`'s second (every id below it was minted by then); None
    past the last second an id can carry (every id is below)."""
    return _first_id_of(int(at.timestamp()) + 1)


def _range(low: dt.datetime | None, high: dt.datetime | None) -> dict:
    bounds = {}
    if low is not None:
        bounds["$gte"] = low
    if high is not None:
        bounds["$lt"] = high
    return bounds


def list_query(client: ObjectId, filters: ListFilters) -> dict:
    """The one indexed query of a list page (keyset: `_id > cursor`)."""
    query: dict = {"client": client}
    for field, value in (("state", filters.state), ("provider", filters.provider),
                         ("supplier.siret", filters.supplier_siret), ("number", filters.number),
                         ("invoice_platform_id", filters.invoice_platform_id)):
        if value is not None:
            query[field] = value
    for field, low, high in (("issue_date", filters.issued_after, filters.issued_before),
                             ("created_at", filters.created_after, filters.created_before),
                             ("updated_at", filters.updated_after, filters.updated_before)):
        bounds = _range(low, high)
        if bounds:
            query[field] = bounds
    ids: dict = {}
    if filters.cursor is not None:
        ids["$gt"] = filters.cursor
    # Ids carry their creation second (mint_id): a created_at range narrows the _id range.
    # Past 2106 no id bound applies: the created_at condition alone decides.
    floor = id_floor(filters.created_after) if filters.created_after is not None else None
    if floor is not None and (filters.cursor is None or floor > filters.cursor):
        ids = {"$gte": floor}
    ceiling = id_ceiling(filters.created_before) if filters.created_before is not None else None
    if ceiling is not None:
        ids["$lt"] = ceiling
    if ids:
        query["_id"] = ids
    return query


@dataclasses.dataclass(frozen=True)
class NewInvoice:
    document: dict


@dataclasses.dataclass(frozen=True)
class InvoiceChange:
    """`changes` to apply unless the invoice was written since `read_rev` was read (optimistic concurrency)."""

    invoice_id: ObjectId
    read_rev: str | None
    changes: dict


@dataclasses.dataclass
class BulkOutcome:
    duplicate_indexes: set[int]
    matched: int


class InvoiceRepository:
    def __init__(self, db: Database):
        self.invoices = db["invoices"]
        # What clients see (PUBLIC_PROJECTION) is read with naive dates, in UTC as BSON stores them:
        # api/rendering.py writes each distinct date of a page once, and a naive date hashes without
        # a call to its tzinfo (a page of 200 has 800 dates: 0.5-0.8 ms).
        self.public = self.invoices.with_options(codec_options=self.invoices.codec_options.with_options(tz_aware=False))
        self.reconcile_state = db["reconcile_state"]
        self.listings = db["listings"]

    def ensure_indexes(self) -> None:
        ensure_indexes(self.invoices, INDEXES)

    # --- ingestion ---------------------------------------------------------------------------

    def find_for_ingest(self, client: ObjectId, provider: str, platform_ids: list[str]) -> dict[str, dict]:
        # The index prefix (client, invoice_platform_id) with `$in` point lookups, the provider checked
        # apart (embedded_server.of_provider).
        cursor = self.invoices.find({"client": client, "invoice_platform_id": {"$in": platform_ids}},
                                    INGEST_PROJECTION, batch_size=len(platform_ids) + 1)
        return {doc["invoice_platform_id"]: doc for doc in of_provider(cursor, provider)}

    def apply(self, writes: list[NewInvoice | InvoiceChange]) -> BulkOutcome:
        """One unordered bulk write (an `insert` and/or an `update` command); duplicate-key failures
        are reported (by index in `writes`), not raised."""
        operations = [InsertOne(write.document) if isinstance(write, NewInvoice) else
                      UpdateOne({"_id": write.invoice_id, "rev": write.read_rev}, {"$set": write.changes})
                      for write in writes]
        try:
            result = self.invoices.bulk_write(operations, ordered=False).bulk_api_result
            duplicates: set[int] = set()
        except BulkWriteError as exc:
            result = exc.details
            errors = result.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            duplicates = {error["index"] for error in errors}
        return BulkOutcome(duplicate_indexes=duplicates, matched=result.get("nMatched", 0))

    # --- full listings ---------------------------------------------------------------------------

    def start_listing(self, connection: object, listing: str, now: dt.datetime) -> None:
        """Remember when a connection's full listing was first seen (its first batch)."""
        self.listings.update_one({"_id": f"{connection}:{listing}"},
                                 {"$setOnInsert": {"connection": connection, "started_at": now}}, upsert=True)

    def listing_started_at(self, connection: object, listing: str) -> dt.datetime | None:
        found = self.listings.find_one({"_id": f"{connection}:{listing}"}, {"started_at": 1})
        return found["started_at"] if found else None

    def cancel_unlisted(self, client: ObjectId, provider: str, listing: str, started_at: dt.datetime,
                        now: dt.datetime, rev: str) -> int:
        """Cancel (for good) the invoices of (client, provider) that `listing` did not list, among those
        stored before the second it started (one stored since may postdate the listing's pass); one bulk
        write. Ids carry their creation second, so that is a range of the (client, _id) index: empty after
        a first sync, whose invoices were all stored during the listing, and then not written at all."""
        older = {"client": client, "_id": {"$lt": id_floor(started_at)}}
        if range_is_empty(self.invoices, older):
            return 0
        unlisted = {**older, "provider": provider, "deleted": {"$ne": True}, "listing": {"$ne": listing}}
        gone = {"deleted": True, "cancelled_at": now, "rev": rev}
        newly = {**gone, "state": CANCELLED, "updated_at": now}
        result = self.invoices.bulk_write([
            UpdateMany({**unlisted, "state": {"$ne": CANCELLED}, "manual_link": {"$ne": True}},
                       {"$set": {**newly, "ticket_id": None}}),
            UpdateMany({**unlisted, "state": {"$ne": CANCELLED}, "manual_link": True}, {"$set": newly}),
            UpdateMany({**unlisted, "state": CANCELLED}, {"$set": gone}),
        ], ordered=False)
        return result.modified_count

    def revisions(self, ids: list[ObjectId]) -> dict[ObjectId, str]:
        cursor = self.invoices.find({"_id": {"$in": ids}}, {"rev": 1}, batch_size=len(ids) + 1)
        return {doc["_id"]: doc.get("rev") for doc in cursor}

    # --- reads ----------------------------------------------------------------------------------

    def list_page(self, client: ObjectId, filters: ListFilters) -> list[dict]:
        """One `find`: sorted by _id, the whole page in the first batch (no getMore, no count), on the
        index `embedded_server.list_index` names (tests/integration/test_public_api.py checks the plans)."""
        query = list_query(client, filters)
        hint = list_hint(query)
        with LIST_QUERY_SECONDS.time():
            return list(self.public.find(query, PUBLIC_PROJECTION, sort=[("_id", ASCENDING)], limit=filters.limit,
                                         batch_size=filters.limit, **({"hint": hint} if hint else {})))

    def get(self, client: ObjectId, invoice_id: ObjectId) -> dict | None:
        return self.public.find_one({"_id": invoice_id, "client": client}, PUBLIC_PROJECTION)

    def link_state(self, client: ObjectId, invoice_id: ObjectId) -> dict | None:
        """What a manual link decides on: the ticket, the state, and the `rev` that guards the write."""
        return self.invoices.find_one({"_id": invoice_id, "client": client}, {"rev": 1, "ticket_id": 1, "state": 1})

    def update_if_unchanged(self, client: ObjectId, invoice_id: ObjectId, rev: str, changes: dict) -> dict | None:
        """Apply `changes` unless the invoice changed since it was read (then None)."""
        return self.public.find_one_and_update(
            {"_id": invoice_id, "client": client, "rev": rev}, {"$set": changes},
            projection=PUBLIC_PROJECTION, return_document=ReturnDocument.AFTER,
        )

    # --- reconciliation ---------------------------------------------------------------------

    def supplier_groups(self, client: ObjectId) -> list[SupplierGroup]:
        """The company's distinct (SIRET, SIREN, supplier): one `$group` over the
        `client_supplier_group` index's entries, never a document per invoice."""
        cursor = self.invoices.aggregate([
            {"$match": {"client": client}},
            {"$group": {"_id": {"siret": "$supplier.siret", "siren": "$supplier.siren", "supplier": "$supplier_id"}}},
        ], batchSize=10_000)
        return [SupplierGroup(doc["_id"].get("siret"), doc["_id"].get("siren"), doc["_id"].get("supplier"))
                for doc in cursor]

    def rematch_suppliers(self, client: ObjectId, stale: list[tuple[SupplierGroup, ObjectId | None]],
                          changes: dict) -> int:
        """Give each stale group its new supplier; an automatic link made under the old supplier is
        undone first (the link phase makes it again if the ticket allows). Every filter is equalities
        on the `client_supplier_group` index."""
        operations = []
        for group, supplier_id in stale:
            members = {"client": client, "supplier.siret": group.siret, "supplier.siren": group.siren,
                       "supplier_id": group.supplier}
            operations.append(UpdateMany({**members, "state": LINKED, "manual_link": False}, {"$set": {
                **changes, "supplier_id": supplier_id, "ticket_id": None, "state": UNMATCHED}}))
            operations.append(UpdateMany(members, {"$set": {**changes, "supplier_id": supplier_id}}))
        if not operations:
            return 0
        return self.invoices.bulk_write(operations, ordered=True).modified_count

    def unlinked_references(self, client: ObjectId) -> list[str]:
        return self.invoices.distinct("order_reference", {**UNLINKED_AUTOMATIC, "client": client})

    def link_references(self, client: ObjectId, tickets: dict[str, Ticket], changes: dict) -> int:
        operations = []
        for reference, ticket in tickets.items():
            query = {**UNLINKED_AUTOMATIC, "client": client, "order_reference": reference}
            if ticket.contractor is not None:
                query["supplier_id"] = ticket.contractor
            operations.append(UpdateMany(query, {"$set": {**changes, "ticket_id": ticket.id, "state": LINKED}}))
        if not operations:
            return 0
        return self.invoices.bulk_write(operations, ordered=False).modified_count

    def fingerprints(self, client: ObjectId) -> dict:
        return self.reconcile_state.find_one({"_id": client}) or {}

    def save_fingerprints(self, client: ObjectId, contractors: str, tickets: str, at: dt.datetime) -> None:
        self.reconcile_state.update_one({"_id": client}, {"$set": {
            "contractors": contractors, "tickets": tickets, "reconciled_at": at}}, upsert=True)


class PlatformRepository:
    """PLATFORM_DB, owned by the Bob! Desk core: read only."""

    def __init__(self, db: Database):
        self.contractors = db["contractors"]
        self.tickets = db["tickets"]

    @staticmethod
    def _of_company(client: ObjectId) -> dict:
        return {"$or": [{"client": client}, {"partners": client}]}

    @staticmethod
    def _contractor(doc: dict) -> Contractor:
        siret = doc.get("siret")
        return Contractor(doc["_id"], siret if isinstance(siret, str) else None, doc.get("isActive") is True)

    def matching_data(self, client: ObjectId, sirens: set[str],
                      numbers: set[str]) -> tuple[list[Contractor], list[Ticket]]:
        """The company's contractors (owned or partner) whose SIRET starts with one of `sirens`, and its
        tickets numbered one of `numbers`: one command (`$unionWith`), none when both are empty."""
        tickets_pipeline = [{"$match": {"client": client, "number": {"$in": sorted(numbers)}}},
                            {"$project": {"number": 1, "contractor": 1, "kind": {"$literal": "ticket"}}}]
        if sirens:
            prefixes = [re.compile("^" + siren) for siren in sorted(sirens)]
            pipeline = [{"$match": {**self._of_company(client), "siret": {"$in": prefixes}}},
                        {"$project": {"siret": 1, "isActive": 1, "kind": {"$literal": "contractor"}}}]
            if numbers:
                pipeline.append({"$unionWith": {"coll": self.tickets.name, "pipeline": tickets_pipeline}})
            cursor = self.contractors.aggregate(pipeline, batchSize=10_000)
        elif numbers:
            cursor = self.tickets.aggregate(tickets_pipeline, batchSize=10_000)
        else:
            return [], []
        contractors, tickets = [], []
        for doc in cursor:
            if doc["kind"] == "contractor":
                contractors.append(self._contractor(doc))
            else:
                tickets.append(self._ticket(doc))
        return contractors, tickets

    @staticmethod
    def _ticket(doc: dict) -> Ticket:
        return Ticket(doc["_id"], doc["number"], doc.get("contractor"))

    def contractors_of(self, client: ObjectId) -> list[Contractor]:
        cursor = self.contractors.find(self._of_company(client), {"siret": 1, "isActive": 1}, batch_size=10_000)
        return [self._contractor(doc) for doc in cursor]

    def tickets_by_numbers(self, client: ObjectId, numbers: set[str] | list[str]) -> list[Ticket]:
        cursor = self.tickets.find({"client": client, "number": {"$in": sorted(numbers)}},
                                   {"number": 1, "contractor": 1}, batch_size=len(numbers) + 1)
        return [self._ticket(doc) for doc in cursor]

    def ticket(self, client: ObjectId, ticket_id: ObjectId) -> Ticket | None:
        doc = self.tickets.find_one({"_id": ticket_id, "client": client}, {"number": 1, "contractor": 1})
        return None if doc is None else Ticket(doc["_id"], doc.get("number", ""), doc.get("contractor"))
