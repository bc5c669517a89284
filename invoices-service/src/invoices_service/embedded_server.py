"""The embedded server's workarounds, in one place (the repository layer's only ones).

Development and tests run on SecantusDB, an embedded MongoDB-compatible server whose planner differs
from MongoDB 7/8 in two ways that matter here; each workaround below is harmless on MongoDB.

Hints: the embedded server walks a hinted index from end to end, whatever the query's bounds, and
its planner scans the collection for some multi-field filters. So queries by `_id`, the ingestion
lookup, reconcile and simple lists are left to the planner; only lists mixing a filter with an
`_id` bound (`list_hint`) name their index. tests/integration/test_query_plans.py and
test_public_api.py explain what ingestion and the reads send. Reconcile is not hinted: on the
embedded server a hinted walk covers every company, which is worse than its scan.
Its planner uses an index only for equalities on a run of the index's fields with no filter field
outside it, so reconcile's re-match filters are equalities on the fields of `client_supplier_group`
(on MongoDB the same index serves them as well).

The ingestion lookup names no `provider`: with it, the embedded planner scans the collection
instead of using the (client, invoice_platform_id, provider) index's prefix; a company has one or
two providers, so filtering them in Python (`of_provider`) costs nothing.

An update whose filter adds conditions to an indexed range (`listing-complete`'s three `UpdateMany`
over the `(client, _id)` range of what a listing did not list) is planned on its first condition
alone: the company's every invoice is read, once per statement (4.9 s for 20,000 invoices, after a
first sync whose range is empty). The range alone is an index range on both servers, so
`range_is_empty` asks it first (one read of at most one key) and the update is skipped when it
holds nothing; on MongoDB the skipped update would have cost as little.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pymongo.collection import Collection

# The index of a list query, most selective first: an exact id, number or SIRET; then a time range
# (a page costs the range, never the whole company); then the state; else the keyset (client, _id).
_LIST_INDEXES = (
    ("invoice_platform_id", "client_platform_id_provider"),
    ("number", "client_number_id"),
    ("supplier.siret", "client_supplier_siret_id"),
    ("updated_at", "client_updated_at"),
    ("issue_date", "client_issue_date"),
    ("state", "client_state_id"),
)


def list_index(query: dict) -> str:
    return next((index for field, index in _LIST_INDEXES if field in query), "client_id")


def list_hint(query: dict) -> str | None:
    """`list_index` when the planner needs telling: a filter combined with an `_id` bound (a cursor or
    a created_at range), where the embedded server's planner falls back to scanning and sorting.
    Otherwise none: every planner picks the index itself, and a hint makes the embedded server walk
    the whole index instead of the query's bounds."""
    filters = set(query) - {"client"}
    return list_index(query) if "_id" in filters and len(filters) > 1 else None


def of_provider(docs: Iterable[dict], provider: str) -> Iterator[dict]:
    """The documents of `provider`, filtered here rather than in the query (see the module docstring)."""
    return (doc for doc in docs if doc.get("provider") == provider)


def range_is_empty(collection: Collection, index_range: dict) -> bool:
    """Whether no document is in `index_range` (equalities then one range on an index's fields)."""
    return collection.find_one(index_range, {"_id": 1}) is None


def earlier_than_now(path: str) -> dict:
    """`path < $$NOW` as an aggregation expression. The embedded server compares a stored date with
    `$$NOW` as equal, whatever the two are; as milliseconds (`$toLong`), both servers compare them
    right. A missing field is null, earlier than any number, as it is earlier than any date."""
    return {"$lt": [{"$toLong": path}, {"$toLong": "$$NOW"}]}


def upserted(collection: Collection, query: dict, projection: list[str], answer: dict | None) -> dict | None:
    """The document an upserting `find_one_and_update` returned (`ReturnDocument.AFTER`). When
    concurrent upserts race to create it, the embedded server applies the losers' updates but
    returns no document; it is then read back. On MongoDB the answer is always there."""
    return answer if answer is not None else collection.find_one(query, projection)
