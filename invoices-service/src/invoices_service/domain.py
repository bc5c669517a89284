"""The invoice rules, free of Flask and pymongo.

- SIRET validity (14 digits + Luhn, La Poste exception) and supplier matching by SIREN;
- automatic ticket links and the canonical state;
- the stored form of the canonical invoice a worker sends (checked by the shared contract);
- what a client can see of an invoice, rendered as exact JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _json_string

from bobdesk_shared.timeutil import iso_ms, parse_iso
from bson import Decimal128, ObjectId

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
class CanonicalInvoice:
    """A canonical invoice (checked by `bobdesk_shared.canonical`) as it is stored: `content` holds
    its stored fields, `content_hash` identifies the provider data exactly (a replay of the same data
    has the same hash)."""

    invoice_platform_id: str
    content: dict
    content_hash: str
    cancelled: bool

    @property
    def supplier_siret(self) -> str | None:
        return self.content["supplier"]["siret"]

    @property
    def supplier_siren(self) -> str | None:
        return self.content["supplier"]["siren"]

    @property
    def order_reference(self) -> str | None:
        return self.content["order_reference"]


def _day(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    day = dt.date.fromisoformat(value)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _instant(value: str) -> dt.datetime:
    parsed = parse_iso(value)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _decimals(row: Mapping, names: tuple[str, ...]) -> dict:
    return {name: Decimal128(row[name]) for name in names}


def stored_canonical(data: Mapping) -> CanonicalInvoice:
    """The stored form of a canonical invoice that the shared contract already checked."""
    supplier = data["supplier"]
    siret = supplier["siret"]
    content = {
        "invoice_platform_id": data["invoice_platform_id"],
        "number": data["number"],
        "issue_date": _day(data["issue_date"]),
        "due_date": _day(data["due_date"]),
        "currency": data["currency"],
        "amounts": _decimals(data["amounts"], ("ht", "tva", "ttc")),
        "vat_lines": None if data["vat_lines"] is None else [
            _decimals(row, ("rate", "base", "amount")) for row in data["vat_lines"]],
        "lines": None if data["lines"] is None else [
            {"label": row["label"], **_decimals(row, ("quantity", "unit_price", "total_excl_tax"))}
            for row in data["lines"]],
        "supplier": {
            "platform_id": supplier["platform_id"],
            "name": supplier["name"],
            # Kept as received even when invalid; only a valid one has a SIREN and can match.
            "siret": siret,
            "siren": invoice_siren(siret, supplier.get("siren")),
            "iban": supplier["iban"],
        },
        "order_reference": data["order_reference"],
        "provider_status": data["provider_status"],
        "provider_cancelled": data["cancelled"],
        "provider_created_at": _instant(data["provider_created_at"]),
        "provider_updated_at": _instant(data["provider_updated_at"]),
    }
    # The raw payload is kept as JSON text: provider keys may hold "$" or "." (not storable as
    # MongoDB field names everywhere), and a mapping fix re-maps it without re-fetching.
    raw_text = json.dumps(data["raw"], separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    content["raw"] = raw_text
    hashed = json.dumps({k: v for k, v in data.items() if k != "raw"}, separators=(",", ":"), sort_keys=True,
                        ensure_ascii=False)
    digest = hashlib.sha256(hashed.encode() + b"\x00" + raw_text.encode()).hexdigest()
    return CanonicalInvoice(data["invoice_platform_id"], content, digest, data["cancelled"])


# --- what clients see -------------------------------------------------------------------------

# The fields of the seed's invoice model, in its order; every list reads only these.
PUBLIC_PROJECTION = {
    "provider": 1, "invoice_platform_id": 1, "number": 1, "issue_date": 1, "due_date": 1, "currency": 1,
    "amounts": 1, "supplier.name": 1, "supplier.siret": 1, "state": 1, "ticket_id": 1, "supplier_id": 1,
    "created_at": 1, "updated_at": 1,
}


def _number(value: Decimal128 | None) -> str:
    # A JSON number literal with the stored digits: no binary float ever holds an amount.
    return "null" if value is None else format(value.to_decimal(), "f")


def _string(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


def _time(value: dt.datetime | None) -> str:
    return "null" if value is None else '"' + iso_ms(value) + '"'


def _id(value: ObjectId | None) -> str:
    return "null" if value is None else f'"{value}"'


def render_invoice(doc: Mapping) -> str:
    """The seed's invoice object as JSON text (hand-written: a list page renders 200 of these)."""
    amounts = doc.get("amounts") or {}
    supplier = doc.get("supplier") or {}
    return (
        f'{{"id":"{doc["_id"]}","provider":{_string(doc.get("provider"))},'
        f'"invoice_platform_id":{_string(doc.get("invoice_platform_id"))},"number":{_string(doc.get("number"))},'
        f'"issue_date":{_time(doc.get("issue_date"))},"due_date":{_time(doc.get("due_date"))},'
        f'"currency":{_string(doc.get("currency"))},'
        f'"amounts":{{"ht":{_number(amounts.get("ht"))},"tva":{_number(amounts.get("tva"))},'
        f'"ttc":{_number(amounts.get("ttc"))}}},'
        f'"supplier":{{"name":{_string(supplier.get("name"))},"siret":{_string(supplier.get("siret"))}}},'
        f'"state":{_string(doc.get("state"))},"ticket_id":{_id(doc.get("ticket_id"))},'
        f'"supplier_id":{_id(doc.get("supplier_id"))},'
        f'"created_at":{_time(doc.get("created_at"))},"updated_at":{_time(doc.get("updated_at"))}}}'
    )


def render_page(docs: list[Mapping]) -> str:
    """`{"cursor", "invoices"}`: the cursor is the last item's id; an empty page ends the list."""
    cursor = _id(docs[-1]["_id"]) if docs else "null"
    return f'{{"cursor":{cursor},"invoices":[{",".join(render_invoice(d) for d in docs)}]}}'


def render_single(doc: Mapping) -> str:
    return f'{{"invoice":{render_invoice(doc)}}}'


VISIBLE_FIELDS = ("number", "issue_date", "due_date", "currency", "amounts", "state", "ticket_id", "supplier_id")


def visible_changes(old: Mapping, new: Mapping) -> bool:
    """Whether a client would see a difference (what moves `updated_at`)."""
    if any(old.get(name) != new.get(name) for name in VISIBLE_FIELDS):
        return True
    old_supplier, new_supplier = old.get("supplier") or {}, new.get("supplier") or {}
    return old_supplier.get("name") != new_supplier.get("name") or old_supplier.get("siret") != new_supplier.get(
        "siret")
