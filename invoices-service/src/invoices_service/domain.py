"""The invoice rules, free of Flask and pymongo.

- SIRET validity (14 digits + Luhn, La Poste exception) and supplier matching by SIREN;
- automatic ticket links and the canonical state;
- the canonical invoice a worker sends (checked by the shared contract) and its identity;
- what a client can see of an invoice (what moves `updated_at`).

Decisions only: the repository stores them, the API renders them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping

from bson import ObjectId

UNMATCHED = "ticket_unmatched"
LINKED = "linked"
CANCELLED = "cancelled"
STATES = (UNMATCHED, LINKED, CANCELLED)
ASSOCIATION_STATES = {"unmatched": UNMATCHED, "linked": LINKED, "all": None}

LA_POSTE_SIREN = "356000000"


# --- SIRET / SIREN ------------------------------------------------------------------

def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_valid_siret(siret: object) -> bool:
    """14 ASCII digits passing Luhn; La Poste's establishments (SIREN 356000000) cannot all pass
    Luhn, so INSEE validates them by a digit sum that is a multiple of 5."""
    if not isinstance(siret, str) or len(siret) != 14 or not siret.isascii() or not siret.isdigit():
        return False
    if siret.startswith(LA_POSTE_SIREN) and sum(ord(c) - 48 for c in siret) % 5 == 0:
        return True
    return luhn_valid(siret)


def siren_of(siret: object) -> str | None:
    """The SIREN (first 9 digits) of a valid SIRET; None for an invalid or missing one."""
    return siret[:9] if is_valid_siret(siret) else None


def invoice_siren(siret: str | None, provider_siren: str | None) -> str | None:
    """The SIREN an invoice's supplier is matched by: its SIRET's, or, when the provider gives no
    SIRET, the provider's own SIREN (9 digits passing Luhn). An invalid SIRET has none."""
    if siret is not None:
        return siren_of(siret)
    valid = isinstance(provider_siren, str) and len(provider_siren) == 9 and provider_siren.isdigit() \
        and luhn_valid(provider_siren)
    return provider_siren if valid else None


@dataclasses.dataclass(frozen=True)
class Contractor:
    id: ObjectId
    siret: str | None
    active: bool


def match_supplier(siret: str | None, siren: str | None, contractors: Iterable[Contractor]) -> ObjectId | None:
    """The contractor with exactly this SIRET wins (the active one if several share it); otherwise
    the one active contractor with the invoice's SIREN (`invoice_siren`); otherwise none (ambiguous
    or unknown). No SIREN (an invalid SIRET, or none and no provider SIREN) matches nothing."""
    if siren is None:
        return None
    exact, same_siren = [], []
    for contractor in contractors:
        if siret is not None and contractor.siret == siret:
            exact.append(contractor)
        elif contractor.active and siren_of(contractor.siret) == siren:
            same_siren.append(contractor)
    if len(exact) == 1:
        return exact[0].id
    if exact:
        active = [c for c in exact if c.active]
        return active[0].id if len(active) == 1 else None
    return same_siren[0].id if len(same_siren) == 1 else None



@dataclasses.dataclass(frozen=True)
class SupplierGroup:
    """Invoices of one SIRET (or, SIRET-less, one SIREN) and one current supplier."""

    siret: str | None
    siren: str | None
    supplier: ObjectId | None


def stale_supplier_groups(groups: Iterable[SupplierGroup], contractors: list[Contractor]
                          ) -> list[tuple[SupplierGroup, ObjectId | None]]:
    """Each group whose supplier is not the one `match_supplier` picks now, with that supplier: what
    a re-match must write, nothing else. Groups with no SIREN match nothing and are left alone."""
    stale = []
    for group in groups:
        if group.siren is None:
            continue
        matched = match_supplier(group.siret, group.siret[:9] if group.siret else group.siren, contractors)
        if matched != group.supplier:
            stale.append((group, matched))
    return stale

def contractors_fingerprint(contractors: Iterable[Contractor]) -> str:
    """Changes whenever a contractor that matching reads appears, goes, or changes SIRET/activity."""
    rows = sorted(f"{c.id}:{c.siret or ''}:{int(c.active)}" for c in contractors)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


# --- tickets and state -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Ticket:
    id: ObjectId
    number: str
    contractor: ObjectId | None


def tickets_fingerprint(tickets: Iterable[Ticket]) -> str:
    rows = sorted(f"{t.id}:{t.number}:{t.contractor or ''}" for t in tickets)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def index_tickets(tickets: Iterable[Ticket]) -> dict[str, list[Ticket]]:
    by_number: dict[str, list[Ticket]] = {}
    for ticket in tickets:
        by_number.setdefault(ticket.number, []).append(ticket)
    return by_number


def automatic_ticket(order_reference: str | None, supplier_id: ObjectId | None,
                     tickets_by_number: Mapping[str, list[Ticket]]) -> ObjectId | None:
    """The one ticket whose number is the order reference, unless it names another contractor
    than the invoice's supplier (a ticket naming a contractor never links an unmatched supplier).
    Two tickets with that number: ambiguous, no link."""
    if not order_reference:
        return None
    candidates = tickets_by_number.get(order_reference, ())
    if len(candidates) != 1:
        return None
    ticket = candidates[0]
    if ticket.contractor is not None and ticket.contractor != supplier_id:
        return None
    return ticket.id


def state_of(cancelled: bool, ticket_id: ObjectId | None) -> str:
    if cancelled:
        return CANCELLED
    return LINKED if ticket_id is not None else UNMATCHED


def decide_link(*, cancelled: bool, manual: bool, current_ticket: ObjectId | None,
                automatic: ObjectId | None) -> tuple[ObjectId | None, str]:
    """(ticket_id, state): a manual decision always stands; a cancelled invoice is never linked
    automatically."""
    if manual:
        ticket = current_ticket
    elif cancelled:
        ticket = None
    else:
        ticket = automatic
    return ticket, state_of(cancelled, ticket)


# --- the canonical invoice ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ListFilters:
    """The list parameters, parsed. Time bounds are half-open: after <= t < before."""

    state: str | None = None
    provider: str | None = None
    supplier_siret: str | None = None
    number: str | None = None
    invoice_platform_id: str | None = None
    issued_after: dt.datetime | None = None
    issued_before: dt.datetime | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None
    cursor: ObjectId | None = None
    limit: int = 50


@dataclasses.dataclass(frozen=True)
class CanonicalInvoice:
    """A canonical invoice that the shared contract (`bobdesk_shared.canonical`) checked, with what the
    rules need of it: `siren` (`invoice_siren`) and `content_hash`, which identifies the provider data
    exactly (a replay of the same data has the same hash)."""

    data: Mapping
    siren: str | None
    raw_text: str  # the provider's payload as canonical JSON text (sorted keys)
    content_hash: str

    @property
    def invoice_platform_id(self) -> str:
        return self.data["invoice_platform_id"]

    @property
    def cancelled(self) -> bool:
        return self.data["cancelled"]

    @property
    def supplier_siret(self) -> str | None:
        return self.data["supplier"]["siret"]

    @property
    def order_reference(self) -> str | None:
        return self.data["order_reference"]


# Canonical JSON text (sorted keys, compact, as written): what `json.dumps` with these options writes,
# from one encoder rather than a new one per call (a batch encodes a thousand).
_canonical_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode


def canonical_invoice(data: Mapping) -> CanonicalInvoice:
    supplier = data["supplier"]
    raw_text = _canonical_json(data["raw"])
    hashed = _canonical_json({k: v for k, v in data.items() if k != "raw"})
    digest = hashlib.sha256(hashed.encode() + b"\x00" + raw_text.encode()).hexdigest()
    return CanonicalInvoice(data, invoice_siren(supplier["siret"], supplier.get("siren")), raw_text, digest)


# --- what clients see -------------------------------------------------------------------------

VISIBLE_FIELDS = ("number", "issue_date", "due_date", "currency", "amounts", "state", "ticket_id", "supplier_id")


def visible_changes(old: Mapping, new: Mapping) -> bool:
    """Whether a client would see a difference (what moves `updated_at`)."""
    if any(old.get(name) != new.get(name) for name in VISIBLE_FIELDS):
        return True
    old_supplier, new_supplier = old.get("supplier") or {}, new.get("supplier") or {}
    return old_supplier.get("name") != new_supplier.get("name") or old_supplier.get("siret") != new_supplier.get(
        "siret")
