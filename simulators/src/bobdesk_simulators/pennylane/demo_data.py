"""Realistic Pennylane data: supplier invoices and their Suppliers, as the public API v2 shapes them.

The demo company keeps its books in both tools, so its Pennylane Suppliers are the
same companies as its Yooz suppliers (same SIRETs: the demo seeder's contractors
match both). One Supplier has only its SIREN (`reg_no`), as many Pennylane
Suppliers do: its invoices are matched on that SIREN alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal

from ..yooz.demo_data import SUPPLIERS as COMPANIES
from ..yooz.demo_data import make_iban

DEMO_ACCOUNT = "demo"
# Public on purpose: the simulator's demo account, known to every reader of this file.
DEMO_API_KEY = "pl_demo_tok_3c8e1f6a9b2d4e70c5a1"
DEMO_INVOICE_COUNT = 30
PAYMENT_STATUSES = ("to_be_processed", "to_be_paid", "partially_paid", "payment_in_progress", "paid",
                    "payment_error")
_LABELS = (
    "Plomberie - fuite local technique", "Électricité - remplacement disjoncteur", "Serrurerie - porte de garage",
    "Chauffage - entretien chaudière", "Vitrerie - vitre brisée hall", "Nettoyage - parties communes",
    "Ascenseur - dépannage cabine", "Peinture - cage d'escalier",
)
_VAT_RATES = (Decimal("20"), Decimal("20"), Decimal("10"), Decimal("5.5"))


@dataclasses.dataclass(frozen=True)
class SupplierSeed:
    name: str
    establishment_no: str | None  # SIRET
    reg_no: str | None  # SIREN
    iban: str | None


def supplier_seeds() -> tuple[SupplierSeed, ...]:
    """The Suppliers every generated account starts with."""
    seeds = [SupplierSeed(c.name, c.siret, c.siret[:9] if c.siret else None, c.iban) for c in COMPANIES]
    moreau = next(c for c in COMPANIES if c.siret and c.name.startswith("Chauffage Moreau"))
    # Known by its SIREN only: a contractor with that SIREN matches it.
    seeds.append(SupplierSeed("Moreau Chauffage (siège)", None, moreau.siret[:9], make_iban("30002005500000157841Z25")))
    return tuple(seeds)


def rfc3339(moment: dt.datetime) -> str:
    """The simulator's times: UTC to the microsecond, as Pennylane renders them."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def loose_decimal(value: Decimal) -> str:
    """Pennylane does not always give two decimals ("34.0", "196.32", "12")."""
    return format(value.normalize(), "f")


def supplier_document(identifier: int, seed: SupplierSeed) -> dict:
    vat = None
    if seed.reg_no:
        key = (12 + 3 * (int(seed.reg_no) % 97)) % 97
        vat = f"FR{key:02d}{seed.reg_no}"
    return {"id": identifier, "name": seed.name, "establishment_no": seed.establishment_no, "reg_no": seed.reg_no,
            "vat_number": vat, "iban": seed.iban}


def make_invoice(rng: random.Random, identifier: int, supplier_id: int | None, *, created_at: dt.datetime,
                 updated_at: dt.datetime, payment_status: str | None = None) -> dict:
    """One supplier invoice with consistent amounts (exact decimals)."""
    base = Decimal(rng.randint(4000, 250000)) / 100
    tax = (base * rng.choice(_VAT_RATES) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
    issue = created_at.date() - dt.timedelta(days=rng.randint(0, 5))
    return {
        "id": identifier,
        "invoice_number": f"F{issue.year}{identifier % 100000:05d}",
        "label": rng.choice(_LABELS) if rng.random() > 0.1 else None,
        "date": issue.isoformat(),
        "deadline": None if rng.random() < 0.15 else (issue + dt.timedelta(days=30)).isoformat(),
        "currency": "EUR",
        "currency_amount_before_tax": loose_decimal(base),
        "currency_tax": loose_decimal(tax),
        "currency_amount": loose_decimal(base + tax),
        "supplier": None if supplier_id is None else {"id": supplier_id},
        "payment_status": payment_status or rng.choice((*PAYMENT_STATUSES[:2], "paid", "paid")),
        "archived_at": None,
        "created_at": rfc3339(created_at),
        "updated_at": rfc3339(updated_at),
    }


def demo_timeline(now: dt.datetime, count: int = DEMO_INVOICE_COUNT, seed: int = 2025) -> list[tuple[dt.datetime,
                                                                                                     int]]:
    """(created_at, supplier index) of the demo invoices: the last 60 days, oldest first."""
    rng = random.Random(seed)
    seeds = supplier_seeds()
    moments = sorted(now - dt.timedelta(days=60 * (count - i) / count, minutes=rng.randint(0, 300))
                     for i in range(count))
    return [(moment, index % len(seeds)) for index, moment in enumerate(moments)]
