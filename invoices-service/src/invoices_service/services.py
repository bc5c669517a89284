"""Use cases: ingest a batch, reconcile a company, list/read invoices, link and unlink by hand.

Ingestion costs a constant number of database commands per batch, whatever its size: one find of
the batch's existing invoices (`$in`), one read of the contractors of its SIRENs, one read of the
tickets of its order references, then one unordered bulk write: an `insert` command for the new
invoices and an `update` command for the changed ones (inserts, not upserts: several times faster,
and the unique (client, invoice_platform_id, provider) index refuses a duplicate). A write that
loses a race (another batch inserted the same invoice: duplicate key; or changed it since it was
read: the `rev` token differs) is planned again from a fresh read; only under contention. A batch's
authorization and lookup are awaited on a helper thread while the request computes the batch's
stored form (content hashes, exact amounts): that CPU and those round trips overlap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bobdesk_shared.errors import Conflict, NotFound, ServiceUnavailable
from bobdesk_shared.timeutil import parse_object_id, utcnow
from bson import ObjectId

from .domain import (
    CANCELLED,
    CanonicalInvoice,
    ListFilters,
    automatic_ticket,
    canonical_invoice,
    contractors_fingerprint,
    decide_link,
    index_tickets,
    match_supplier,
    stale_supplier_groups,
    state_of,
    tickets_fingerprint,
    visible_changes,
)
from .ingest_authorizer import IngestAuthorizer, IngestGrant
from .repository import (
    InvoiceChange,
    InvoiceRepository,
    NewInvoice,
    PlatformRepository,
    mint_id,
)
from .stored_form import stored_content

MAX_ATTEMPTS = 5
LOOKUP_THREADS = 4  # as many as a worker serves requests at once (gunicorn's threads)
MAX_LISTINGS_REMEMBERED = 10_000
# Compared with the stored invoice to tell "unchanged" from "updated" (content_hash covers the
# provider data; the rest is what matching and cancellations derive from it).
DERIVED_FIELDS = ("connection", "content_hash", "supplier_id", "ticket_id", "state", "deleted")


def _stored_forms(canonical_invoices: list[dict]) -> tuple[dict[str, CanonicalInvoice], dict[str, dict]]:
    """The batch's invoices by id (the last copy wins) and their stored content."""
    latest = {invoice.invoice_platform_id: invoice for invoice in map(canonical_invoice, canonical_invoices)}
    return latest, {key: stored_content(invoice) for key, invoice in latest.items()}


@dataclasses.dataclass
class _Plan:
    key: str
    outcome: str
    id: ObjectId | None = None
    write: NewInvoice | InvoiceChange | None = None
    rev: str | None = None


class InvoiceService:
    def __init__(self, invoices: InvoiceRepository, platform: PlatformRepository, authorizer: IngestAuthorizer,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.invoices = invoices
        self.platform = platform
        self.authorizer = authorizer
        self.clock = clock
        # Full listings whose start this process already recorded: their next batches skip the write.
        self._listings_started: set[tuple] = set()
        # Waits for a batch's authorization and lookup while its request computes (one each, I/O only).
        self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="ingest-lookup")

    # --- ingestion --------------------------------------------------------------------------

    def ingest(self, connection_id: str, fence: int | None, canonical_invoices: list[dict],
               cancellations: list[dict], listing: str | None = None) -> dict:
        """Store a batch whose invoices the shared contract (`bobdesk_shared.canonical`) checked.

        A batch of a full listing names it: its invoices are marked as listed by it. While a helper
        thread waits for the authorization and for the lookup of the batch's invoices, this one
        computes their stored form (content hashes, exact amounts: most of the batch's CPU)."""
        cancel_at = {entry["invoice_platform_id"]: entry["at"] for entry in cancellations}
        keys = list(dict.fromkeys([*(invoice["invoice_platform_id"] for invoice in canonical_invoices), *cancel_at]))
        lookup = self._lookups.submit(self._authorize_and_find, connection_id, fence, listing, keys)
        latest, contents = _stored_forms(canonical_invoices)
        grant, existing = lookup.result()
        summary = {"created": 0, "updated": 0, "unchanged": 0, "cancelled": 0, "results": []}
        if not keys:
            return summary
        sirens = {invoice.siren for invoice in latest.values()} - {None}
        references = {invoice.order_reference for invoice in latest.values()} - {None}
        contractors, found_tickets = self.platform.matching_data(grant.client, sirens, references)
        tickets = index_tickets(found_tickets)

        done: dict[str, _Plan] = {}
        pending = keys
        for _attempt in range(MAX_ATTEMPTS):
            now = self.clock()
            plans = [self._plan(key, latest.get(key), contents.get(key), cancel_at.get(key), existing.get(key), grant,
                                contractors, tickets, now, listing) for key in pending]
            writes = [plan for plan in plans if plan.write is not None]
            losers = self._write(writes) if writes else set()
            done.update((plan.key, plan) for plan in plans if plan.key not in losers)
            pending = [key for key in pending if key in losers]
            if not pending:
                break
            existing = self.invoices.find_for_ingest(grant.client, grant.provider, pending)  # what the race wrote
        else:
            raise ServiceUnavailable("Concurrent updates of the same invoices; retry the batch.", code="contention")

        for key in keys:
            plan = done[key]
            if plan.outcome in summary:
                summary[plan.outcome] += 1
            summary["results"].append({"invoice_platform_id": key, "id": str(plan.id) if plan.id else None,
                                       "outcome": plan.outcome})
        return summary

    def _authorize_and_find(self, connection_id: str, fence: int | None, listing: str | None,
                            keys: list[str]) -> tuple[IngestGrant, dict[str, dict]]:
        """The batch's grant (nothing is read or written before it), then its stored invoices."""
        grant = self.authorizer.authorize(connection_id, fence)
        self._start_listing(grant, listing)
        return grant, self.invoices.find_for_ingest(grant.client, grant.provider, keys) if keys else {}

    def _start_listing(self, grant: IngestGrant, listing: str | None) -> None:
        if listing is None or (grant.connection, listing) in self._listings_started:
            return
        self.invoices.start_listing(grant.connection, listing, self.clock())
        if len(self._listings_started) >= MAX_LISTINGS_REMEMBERED:
            self._listings_started.clear()
        self._listings_started.add((grant.connection, listing))

    def _plan(self, key: str, invoice: CanonicalInvoice | None, content: dict | None, cancel_at: dt.datetime | None,
              existing: dict | None, grant: IngestGrant, contractors, tickets, now: dt.datetime,
              listing: str | None = None) -> _Plan:
        rev = str(ObjectId())
        if invoice is None:
            return self._plan_cancellation(key, cancel_at, existing, rev, now)
        already_deleted = bool(existing and existing.get("deleted"))
        deleted = already_deleted or cancel_at is not None
        cancelled = invoice.cancelled or deleted
        supplier_id = match_supplier(invoice.supplier_siret, invoice.siren, contractors)
        ticket_id, state = decide_link(
            cancelled=cancelled, manual=bool(existing and existing.get("manual_link")),
            current_ticket=existing.get("ticket_id") if existing else None,
            automatic=automatic_ticket(invoice.order_reference, supplier_id, tickets))
        derived = {"connection": grant.connection, "content_hash": invoice.content_hash, "supplier_id": supplier_id,
                   "ticket_id": ticket_id, "state": state, "deleted": deleted}
        if cancel_at is not None and not already_deleted:
            derived["cancelled_at"] = cancel_at
        if listing is not None:
            derived["listing"] = listing
        if existing is None:
            invoice_id = mint_id(now)
            document = {"_id": invoice_id, "client": grant.client, "provider": grant.provider, **content,
                        **derived, "manual_link": False, "rev": rev, "created_at": now, "updated_at": now}
            return _Plan(key, "created", invoice_id, NewInvoice(document), rev)
        if all(existing.get(name) == derived[name] for name in DERIVED_FIELDS):
            if listing is None or existing.get("listing") == listing:
                return _Plan(key, "unchanged", existing["_id"])
            # Unchanged, but listed again: only the mark moves (same rev: nothing a reader sees changed).
            mark = InvoiceChange(existing["_id"], existing.get("rev"), {"listing": listing})
            return _Plan(key, "unchanged", existing["_id"], mark, existing.get("rev"))
        changes = {**content, **derived, "rev": rev}
        if visible_changes(existing, changes):
            changes["updated_at"] = now
        outcome = "cancelled" if cancel_at is not None and not already_deleted else "updated"
        return _Plan(key, outcome, existing["_id"], InvoiceChange(existing["_id"], existing.get("rev"), changes), rev)

    @staticmethod
    def _plan_cancellation(key: str, cancel_at: dt.datetime, existing: dict | None, rev: str,
                           now: dt.datetime) -> _Plan:
        if existing is None:
            return _Plan(key, "not_found")
        if existing.get("deleted"):
            return _Plan(key, "unchanged", existing["_id"])
        ticket_id, state = decide_link(cancelled=True, manual=bool(existing.get("manual_link")),
                                       current_ticket=existing.get("ticket_id"), automatic=None)
        changes = {"deleted": True, "cancelled_at": cancel_at, "ticket_id": ticket_id, "state": state, "rev": rev}
        if state != existing.get("state") or ticket_id != existing.get("ticket_id"):
            changes["updated_at"] = now
        return _Plan(key, "cancelled", existing["_id"], InvoiceChange(existing["_id"], existing.get("rev"), changes),
                     rev)

    def complete_listing(self, connection_id: str, fence: int, listing: str) -> dict:
        """A full listing ended: cancel the connection's invoices it did not list."""
        grant = self.authorizer.authorize(connection_id, fence)
        started_at = self.invoices.listing_started_at(grant.connection, listing)
        if started_at is None:
            raise Conflict("No batch of this listing was stored.", code="unknown_listing")
        cancelled = self.invoices.cancel_unlisted(grant.client, grant.provider, listing, started_at, self.clock(),
                                                  str(ObjectId()))
        return {"cancelled": cancelled}

    def _write(self, writes: list[_Plan]) -> set[str]:
        """Apply every write in one command; the keys of the writes that lost a race."""
        outcome = self.invoices.apply([plan.write for plan in writes])
        # A duplicate key: another batch inserted the invoice meanwhile; plan it again as an update.
        losers = {writes[index].key for index in outcome.duplicate_indexes}
        updates = [plan for plan in writes if isinstance(plan.write, InvoiceChange)]
        if updates and outcome.matched < len(updates):
            revisions = self.invoices.revisions([plan.id for plan in updates])
            losers.update(plan.key for plan in updates if revisions.get(plan.id) != plan.rev)
        return losers

    # --- reads ------------------------------------------------------------------------------

    def list_invoices(self, client: ObjectId, filters: ListFilters) -> list[dict]:
        """One page for the public API and jarvis alike."""
        return self.invoices.list_page(client, filters)

    def get_invoice(self, client: ObjectId, invoice_id: str) -> dict:
        oid = parse_object_id(invoice_id)
        doc = self.invoices.get(client, oid) if oid is not None else None
        if doc is None:
            raise NotFound("No such invoice.")
        return doc

    # --- manual links -----------------------------------------------------------------------

    def link(self, client: ObjectId, invoice_id: str, ticket_id: str) -> dict:
        ticket_oid = parse_object_id(ticket_id)
        ticket = self.platform.ticket(client, ticket_oid) if ticket_oid is not None else None
        invoice_oid = parse_object_id(invoice_id)
        if invoice_oid is None:
            raise NotFound("No such invoice.")
        if ticket is None:
            raise NotFound("No such ticket.", code="ticket_not_found")
        return self._decide_by_hand(client, invoice_oid, ticket.id)

    def unlink(self, client: ObjectId, invoice_id: str) -> dict:
        invoice_oid = parse_object_id(invoice_id)
        if invoice_oid is None:
            raise NotFound("No such invoice.")
        return self._decide_by_hand(client, invoice_oid, None)

    def _decide_by_hand(self, client: ObjectId, invoice_id: ObjectId, ticket_id: ObjectId | None) -> dict:
        """A manual decision: later ingestions and reconciles keep it (`manual_link`)."""
        for _attempt in range(MAX_ATTEMPTS):
            current = self.invoices.link_state(client, invoice_id)
            if current is None:
                raise NotFound("No such invoice.")
            cancelled = current.get("state") == CANCELLED
            if cancelled and ticket_id is not None:
                raise Conflict("A cancelled invoice cannot be linked to a ticket.", code="invoice_cancelled")
            state = state_of(cancelled, ticket_id)
            changes = {"manual_link": True, "ticket_id": ticket_id, "state": state, "rev": str(ObjectId())}
            if current.get("ticket_id") != ticket_id or current.get("state") != state:
                changes["updated_at"] = self.clock()
            updated = self.invoices.update_if_unchanged(client, invoice_id, current.get("rev"), changes)
            if updated is not None:
                return updated
        raise ServiceUnavailable("The invoice keeps changing; retry.", code="contention")

    # --- reconciliation ---------------------------------------------------------------------

    def reconcile(self, client: ObjectId) -> dict:
        """Re-match suppliers when the company's contractors changed, and link unlinked invoices to
        tickets that appeared. Cost: the company's contractors, its supplier groups (only when they
        changed; writes only for the stale ones) and its distinct unlinked references; never one
        command per invoice."""
        contractors = self.platform.contractors_of(client)
        contractors_print = contractors_fingerprint(contractors)
        stored = self.invoices.fingerprints(client)
        now = self.clock()
        changes = {"updated_at": now, "rev": str(ObjectId())}
        rematched = 0
        contractors_changed = stored.get("contractors") != contractors_print
        if contractors_changed:
            stale = stale_supplier_groups(self.invoices.supplier_groups(client), contractors)
            rematched = self.invoices.rematch_suppliers(client, stale, changes)
        references = self.invoices.unlinked_references(client)
        tickets = self.platform.tickets_by_numbers(client, references) if references else []
        tickets_print = tickets_fingerprint(tickets)
        linked = 0
        if contractors_changed or rematched or stored.get("tickets") != tickets_print:
            linkable = {number: found[0] for number, found in index_tickets(tickets).items() if len(found) == 1}
            linked = self.invoices.link_references(client, linkable, changes)
            self.invoices.save_fingerprints(client, contractors_print, tickets_print, now)
        return {"suppliers_rematched": rematched, "tickets_linked": linked}
