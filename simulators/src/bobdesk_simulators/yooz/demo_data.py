"""Realistic Yooz data: French suppliers with Luhn-valid SIRETs, VAT, ticket references.

The demo seeder (`bobdesk_devtools.demo`) imports the same suppliers and ticket
numbers to create matching contractors and tickets in PLATFORM_DB.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal

DEMO_ACCOUNT = "demo"
# Public on purpose: the simulator's demo account, known to every reader of this file.
DEMO_API_KEY = "yz_demo_sk_4f9c2a7e1b3d5f60a8c7"
DEMO_WEBHOOK_SECRET = "whsec_demo_8b1e6c3a9d2f40575e1d"  # noqa: S105
DEMO_INVOICE_COUNT = 40
# Tickets of the demo company; some demo invoices quote them as their order reference.
DEMO_TICKET_NUMBERS = tuple(f"T-2024-{n:04d}" for n in range(1, 13))
CENT = Decimal("0.01")


def luhn_check_digit(digits: str) -> str:
    """The digit that makes `digits + digit` pass the Luhn check (SIREN and SIRET use it)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # doubled once the check digit is appended
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def luhn_valid(digits: str) -> bool:
    return digits.isdigit() and luhn_check_digit(digits[:-1]) == digits[-1]


def make_siret(siren_stem: str, nic_stem: str) -> str:
    """A SIRET whose SIREN (9 digits) and whole 14 digits are Luhn-valid."""
    siren = siren_stem + luhn_check_digit(siren_stem)
    return siren + nic_stem + luhn_check_digit(siren + nic_stem)


def make_iban(bank_digits: str) -> str:
    """A French IBAN with correct ISO 13616 check digits."""
    bban = bank_digits
    numeric = int("".join(str(int(c, 36)) for c in bban + "FR00"))
    return f"FR{98 - numeric % 97:02d}{bban}"


@dataclasses.dataclass(frozen=True)
class Supplier:
    id: str
    name: str
    siret: str | None
    iban: str | None


SUPPLIERS: tuple[Supplier, ...] = (
    Supplier("SUP-101", "Plomberie Martin SARL", make_siret("44306184", "0001"), make_iban("30006000011234567890189")),
    Supplier("SUP-102", "Électricité Dubois et Fils", make_siret("51234987", "0002"),
             make_iban("30004008280001234567891")),
    Supplier("SUP-103", "Serrurerie Lefèvre", make_siret("80295478", "0001"), make_iban("10278060310002045670137")),
    Supplier("SUP-104", "Chauffage Moreau SAS", make_siret("39012345", "0004"), make_iban("20041010050500013M02606")),
    Supplier("SUP-105", "Vitrerie Laurent", make_siret("82145630", "0003"), None),
    Supplier("SUP-106", "Nettoyage Pro Île-de-France", make_siret("75321098", "0001"),
             make_iban("30003035400005004567812")),
    Supplier("SUP-107", "Ascenseurs Girard", make_siret("61098765", "0012"), make_iban("11315000011234567890138")),
    Supplier("SUP-108", "Peinture Rousseau", None, None),
)

_LABELS = (
    "Intervention dépannage", "Remplacement robinetterie", "Main d'œuvre (heure)", "Déplacement",
    "Fourniture pièces détachées", "Contrat de maintenance mensuel", "Remplacement serrure 3 points",
    "Nettoyage parties communes", "Vitrage feuilleté 44.2", "Mise en conformité tableau électrique",
)
_VAT_RATES = (Decimal("20.0"), Decimal("20.0"), Decimal("20.0"), Decimal("10.0"), Decimal("5.5"))


def iso_z(moment: dt.datetime) -> str:
    """The simulator's times: UTC to the microsecond, so bulk changes stay distinct without running ahead."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_invoice(rng: random.Random, identifier: str, *, created_at: dt.datetime, updated_at: dt.datetime,
                 supplier: Supplier | None = None, order_reference: str | None = None,
                 status: str | None = None) -> dict:
    """One Yooz invoice with consistent lines, VAT and totals (exact decimals)."""
    supplier = supplier or rng.choice(SUPPLIERS)
    rate = rng.choice(_VAT_RATES)
    lines = []
    for _ in range(rng.randint(1, 3)):
        quantity = Decimal(rng.randint(1, 4))
        unit_price = (Decimal(rng.randint(2500, 95000)) / 100).quantize(CENT)
        lines.append({"label": rng.choice(_LABELS), "quantity": str(quantity), "unit_price": str(unit_price),
                      "total_excl_tax": str((quantity * unit_price).quantize(CENT))})
    base = sum((Decimal(line["total_excl_tax"]) for line in lines), Decimal("0.00"))
    tax = (base * rate / 100).quantize(CENT, ROUND_HALF_UP)
    issue = created_at.date() - dt.timedelta(days=rng.randint(0, 5))
    number = identifier.replace("YZ-", "FA-")
    return {
        "id": identifier,
        "number": number,
        "issue_date": issue.isoformat(),
        "due_date": None if rng.random() < 0.1 else (issue + dt.timedelta(days=30)).isoformat(),
        "currency": "EUR",
        "total_excl_tax": str(base),
        "total_tax": str(tax),
        "total_incl_tax": str(base + tax),
        "vat_lines": [{"rate": str(rate), "base": str(base), "amount": str(tax)}],
        "lines": lines,
        "supplier": {"id": supplier.id, "name": supplier.name, "siret": supplier.siret, "iban": supplier.iban},
        "order_reference": order_reference,
        "status": status or rng.choice(("to_validate", "validated", "validated", "paid")),
        "created_at": iso_z(created_at),
        "updated_at": iso_z(updated_at),
    }


def demo_invoices(now: dt.datetime, count: int = DEMO_INVOICE_COUNT, seed: int = 2024) -> list[dict]:
    """The demo account's invoices: the last 90 days, a third quoting a demo ticket, a few cancelled."""
    rng = random.Random(seed)
    invoices = []
    for index in range(count):
        created = now - dt.timedelta(days=90 * (count - index) / count, minutes=rng.randint(0, 600))
        updated = min(now, created + dt.timedelta(hours=rng.randint(0, 48)))
        reference = DEMO_TICKET_NUMBERS[index % len(DEMO_TICKET_NUMBERS)] if index % 3 == 0 else None
        status = "rejected" if index % 17 == 5 else ("deleted" if index % 19 == 7 else None)
        invoices.append(make_invoice(rng, f"YZ-{created.year}-{index + 1:05d}", created_at=created,
                                     updated_at=updated, order_reference=reference, status=status))
    return invoices
