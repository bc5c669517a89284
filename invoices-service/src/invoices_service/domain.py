"""The invoice rules of CONTRACTS section 7, free of Flask and pymongo.

- SIRET validity (14 digits + Luhn, La Poste exception) and supplier matching by SIREN;
- automatic ticket links and the canonical state;
- the canonical invoice a worker sends (checked here, so a 400 names every problem);
- what a client can see of an invoice, rendered as exact JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
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


@dataclasses.dataclass(frozen=True)
class Contractor:
    id: ObjectId
    siret: str | None
    active: bool


def match_supplier(siret: str | None, contractors: Iterable[Contractor]) -> ObjectId | None:
    """CONTRACTS 7: the contractor with exactly this SIRET wins (the active one if several share
    it); otherwise the one active contractor with the same SIREN; otherwise none (ambiguous or
    unknown). An invalid SIRET matches nothing."""
    siren = siren_of(siret)
    if siren is None:
        return None
    exact, same_siren = [], []
    for contractor in contractors:
        if contractor.siret == siret:
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


# --- the canonical invoice (docs/internal-api.md) ------------------------------------------

CANONICAL_FIELDS = frozenset((
    "invoice_platform_id", "number", "issue_date", "due_date", "currency", "amounts", "vat_lines", "lines",
    "supplier", "order_reference", "provider_status", "cancelled", "provider_created_at",
    "provider_updated_at", "raw",
))
SUPPLIER_FIELDS = frozenset(("platform_id", "name", "siret", "iban"))
VAT_LINE_DECIMALS = ("rate", "base", "amount")
LINE_DECIMALS = ("quantity", "unit_price", "total_excl_tax")
MAX_TEXT = 500
MAX_ROWS = 1000
_DECIMAL = re.compile(r"-?\d{1,18}(\.\d{1,10})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")


class NotCanonical(ValueError):
    """The messages say every field that is wrong."""

    def __init__(self, messages: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in messages.items()))
        self.messages = messages


class _Checker:
    def __init__(self, data: Mapping):
        self.data = data
        self.errors: dict[str, str] = {}

    def fail(self, path: str, message: str) -> None:
        self.errors.setdefault(path, message)

    def text(self, value, path: str, *, required: bool) -> str | None:
        if value is None:
            if required:
                self.fail(path, "Missing value.")
            return None
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
            self.fail(path, f"Not a non-empty printable string of at most {MAX_TEXT} characters.")
            return None
        return value

    def decimal(self, value, path: str) -> Decimal128 | None:
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            self.fail(path, "Not an exact decimal string (up to 18 digits and 10 decimals).")
            return None
        return Decimal128(value)

    def date(self, value, path: str, *, required: bool) -> dt.datetime | None:
        if value is None and not required:
            return None
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                day = dt.date.fromisoformat(value)
                return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            except ValueError:
                pass
        self.fail(path, "Not a YYYY-MM-DD date.")
        return None

    def time(self, value, path: str) -> dt.datetime | None:
        try:
            parsed = parse_iso(value)
        except (ValueError, TypeError):
            self.fail(path, "Not an ISO-8601 time with a time zone.")
            return None
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)

    def rows(self, value, path: str, decimals: tuple[str, ...], texts: tuple[str, ...]) -> list | None:
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > MAX_ROWS:
            self.fail(path, f"Not a list of at most {MAX_ROWS} rows.")
            return None
        rows = []
        for index, row in enumerate(value):
            if not isinstance(row, dict) or set(row) != set(decimals) | set(texts):
                self.fail(f"{path}.{index}", f"Must hold exactly {', '.join(texts + decimals)}.")
                continue
            stored = {name: self.text(row[name], f"{path}.{index}.{name}", required=True) for name in texts}
            stored.update({name: self.decimal(row[name], f"{path}.{index}.{name}") for name in decimals})
            rows.append(stored)
        return rows


@dataclasses.dataclass(frozen=True)
class CanonicalInvoice:
    """A checked canonical invoice: `content` holds its stored fields, `content_hash` identifies the
    provider data exactly (a replay of the same data has the same hash)."""

    invoice_platform_id: str
    content: dict
    content_hash: str
    cancelled: bool

    @property
    def supplier_siret(self) -> str | None:
        return self.content["supplier"]["siret"]

    @property
    def order_reference(self) -> str | None:
        return self.content["order_reference"]


def parse_canonical(data: object) -> CanonicalInvoice:
    """The stored form of a canonical invoice; `NotCanonical` listing every wrong field."""
    if not isinstance(data, dict):
        raise NotCanonical({"_": "Not an object."})
    check = _Checker(data)
    missing, extra = CANONICAL_FIELDS - set(data), set(data) - CANONICAL_FIELDS
    for name in sorted(missing):
        check.fail(name, "Missing field.")
    for name in sorted(extra):
        check.fail(name, "Unknown field.")
    if missing:
        raise NotCanonical(check.errors)
    platform_id = check.text(data["invoice_platform_id"], "invoice_platform_id", required=True)
    amounts = data["amounts"]
    if isinstance(amounts, dict) and set(amounts) == {"ht", "tva", "ttc"}:
        stored_amounts = {name: check.decimal(amounts[name], f"amounts.{name}") for name in ("ht", "tva", "ttc")}
    else:
        check.fail("amounts", "Must hold exactly ht, tva and ttc.")
        stored_amounts = None
    supplier = data["supplier"]
    stored_supplier = None
    if isinstance(supplier, dict) and set(supplier) == SUPPLIER_FIELDS:
        siret = check.text(supplier["siret"], "supplier.siret", required=False)
        stored_supplier = {
            "platform_id": check.text(supplier["platform_id"], "supplier.platform_id", required=False),
            "name": check.text(supplier["name"], "supplier.name", required=True),
            # Kept as received even when invalid; only a valid one has a SIREN and can match.
            "siret": siret,
            "siren": siren_of(siret),
            "iban": check.text(supplier["iban"], "supplier.iban", required=False),
        }
    else:
        check.fail("supplier", "Must hold exactly platform_id, name, siret and iban.")
    cancelled = data["cancelled"]
    if not isinstance(cancelled, bool):
        check.fail("cancelled", "Not a boolean.")
    currency = data["currency"]
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        check.fail("currency", "Not a 3-letter upper-case ISO 4217 code.")
    raw = data["raw"]
    if not isinstance(raw, dict):
        check.fail("raw", "Not an object.")
    content = {
        "invoice_platform_id": platform_id,
        "number": check.text(data["number"], "number", required=True),
        "issue_date": check.date(data["issue_date"], "issue_date", required=True),
        "due_date": check.date(data["due_date"], "due_date", required=False),
        "currency": currency,
        "amounts": stored_amounts,
        "vat_lines": check.rows(data["vat_lines"], "vat_lines", VAT_LINE_DECIMALS, ()),
        "lines": check.rows(data["lines"], "lines", LINE_DECIMALS, ("label",)),
        "supplier": stored_supplier,
        "order_reference": check.text(data["order_reference"], "order_reference", required=False),
        "provider_status": check.text(data["provider_status"], "provider_status", required=True),
        "provider_cancelled": cancelled,
        "provider_created_at": check.time(data["provider_created_at"], "provider_created_at"),
        "provider_updated_at": check.time(data["provider_updated_at"], "provider_updated_at"),
    }
    if check.errors:
        raise NotCanonical(check.errors)
    # The raw payload is kept as JSON text: provider keys may hold "$" or "." (not storable as
    # MongoDB field names everywhere), and a mapping fix re-maps it without re-fetching.
    raw_text = json.dumps(raw, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    content["raw"] = raw_text
    hashed = json.dumps({k: v for k, v in data.items() if k != "raw"}, separators=(",", ":"), sort_keys=True,
                        ensure_ascii=False)
    digest = hashlib.sha256(hashed.encode() + b"\x00" + raw_text.encode()).hexdigest()
    return CanonicalInvoice(platform_id, content, digest, cancelled)


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
