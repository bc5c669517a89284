"""Unit tests of the rules: SIRET/Luhn, supplier matching, ticket links, states, the canonical invoice's
identity, visible changes."""

from __future__ import annotations

import pytest
from bson import Decimal128, ObjectId
from invoices_service import domain
from invoices_service.domain import Contractor, Ticket

ACME = "73282932000074"  # a real, Luhn-valid SIRET
ACME_OTHER_SITE = "73282932000017"


# --- SIRET -------------------------------------------------------------------------------------

@pytest.mark.parametrize("siret", [ACME, ACME_OTHER_SITE, "35600000052135", "35600000000001", "35600000000048"])
def test_valid_sirets(siret):
    assert domain.is_valid_siret(siret)
    assert domain.siren_of(siret) == siret[:9]


@pytest.mark.parametrize("siret", [
    None, "", "73282932000075",  # Luhn fails
    "7328293200007", "732829320000740",  # 13 and 15 digits
    "7328293200007A", " 3282932000074", "".join(chr(0xFF10 + int(d)) for d in "73282932000074"),  # letter, space, wide
    "35600000012345",  # La Poste, digit sum not a multiple of 5 and Luhn fails
    73282932000074,
])
def test_invalid_sirets(siret):
    assert not domain.is_valid_siret(siret)
    assert domain.siren_of(siret) is None


def test_la_poste_exception_only_for_la_poste():
    # Digit sum 30 (a multiple of 5) but Luhn fails: valid only under SIREN 356000000.
    assert domain.is_valid_siret("35600000052135")
    assert not domain.luhn_valid("35600000052135")
    assert not domain.is_valid_siret("35700000052135")


# --- supplier matching ------------------------------------------------------------------------

def contractor(siret, active=True):
    return Contractor(ObjectId(), siret, active)


def match(siret, contractors, provider_siren=None):
    return domain.match_supplier(siret, domain.invoice_siren(siret, provider_siren), contractors)


def test_exact_siret_wins_over_same_siren():
    exact, sibling = contractor(ACME), contractor(ACME_OTHER_SITE)
    assert match(ACME, [sibling, exact]) == exact.id


def test_exact_siret_wins_even_inactive():
    exact = contractor(ACME, active=False)
    assert match(ACME, [exact, contractor(ACME_OTHER_SITE)]) == exact.id


def test_several_exact_prefer_the_single_active_one():
    active = contractor(ACME)
    assert match(ACME, [contractor(ACME, active=False), active]) == active.id
    assert match(ACME, [contractor(ACME), contractor(ACME)]) is None


def test_same_siren_single_active_contractor():
    sibling = contractor(ACME_OTHER_SITE)
    assert match(ACME, [sibling, contractor(ACME_OTHER_SITE, active=False)]) == sibling.id


def test_same_siren_ambiguous_matches_nothing():
    assert match(ACME, [contractor(ACME_OTHER_SITE), contractor("73282932000090")]) is None


def test_no_contractor_with_that_siren():
    assert match(ACME, [contractor("35600000052135")]) is None


def test_invalid_siret_matches_nothing_even_an_identical_contractor():
    assert match("73282932000075", [contractor("73282932000075")]) is None
    assert match(None, [contractor(ACME)]) is None


def test_inactive_same_siren_does_not_match():
    assert match(ACME, [contractor(ACME_OTHER_SITE, active=False)]) is None


def test_without_siret_the_providers_siren_matches_the_one_active_contractor():
    only = contractor(ACME)
    assert match(None, [only, contractor(ACME_OTHER_SITE, active=False)], provider_siren=ACME[:9]) == only.id
    assert match(None, [contractor(ACME), contractor(ACME_OTHER_SITE)], provider_siren=ACME[:9]) is None
    assert match(None, [contractor(ACME)], provider_siren="732829321") is None  # Luhn fails: no SIREN


def test_a_siret_always_wins_over_the_providers_siren():
    assert domain.invoice_siren(ACME, "356000000") == ACME[:9]
    assert domain.invoice_siren("73282932000075", ACME[:9]) is None  # an invalid SIRET matches nothing
    assert domain.invoice_siren(None, ACME[:9]) == ACME[:9]
    assert domain.invoice_siren(None, None) is None


def test_fingerprint_changes_with_the_contractor_set():
    one = contractor(ACME)
    base = domain.contractors_fingerprint([one])
    assert domain.contractors_fingerprint([one]) == base
    assert domain.contractors_fingerprint([one, contractor(ACME_OTHER_SITE)]) != base
    assert domain.contractors_fingerprint([Contractor(one.id, ACME, False)]) != base


# --- tickets and states -----------------------------------------------------------------------

def test_automatic_ticket_rules():
    supplier = ObjectId()
    free, for_supplier, for_other = (Ticket(ObjectId(), "T-1", None), Ticket(ObjectId(), "T-2", supplier),
                                     Ticket(ObjectId(), "T-3", ObjectId()))
    tickets = domain.index_tickets([free, for_supplier, for_other, Ticket(ObjectId(), "T-4", None),
                                    Ticket(ObjectId(), "T-4", None)])
    assert domain.automatic_ticket("T-1", None, tickets) == free.id
    assert domain.automatic_ticket("T-2", supplier, tickets) == for_supplier.id
    assert domain.automatic_ticket("T-2", None, tickets) is None  # names a contractor, supplier unknown
    assert domain.automatic_ticket("T-3", supplier, tickets) is None  # another contractor
    assert domain.automatic_ticket("T-4", None, tickets) is None  # ambiguous
    assert domain.automatic_ticket("T-9", None, tickets) is None
    assert domain.automatic_ticket(None, None, tickets) is None


def test_decide_link_and_states():
    ticket, manual_ticket = ObjectId(), ObjectId()
    assert domain.decide_link(cancelled=False, manual=False, current_ticket=None, automatic=ticket) == (
        ticket, domain.LINKED)
    assert domain.decide_link(cancelled=False, manual=False, current_ticket=ticket, automatic=None) == (
        None, domain.UNMATCHED)
    assert domain.decide_link(cancelled=True, manual=False, current_ticket=ticket, automatic=ticket) == (
        None, domain.CANCELLED)
    # A manual decision stands, whatever the automatic rule says.
    assert domain.decide_link(cancelled=False, manual=True, current_ticket=manual_ticket, automatic=ticket) == (
        manual_ticket, domain.LINKED)
    assert domain.decide_link(cancelled=False, manual=True, current_ticket=None, automatic=ticket) == (
        None, domain.UNMATCHED)
    assert domain.decide_link(cancelled=True, manual=True, current_ticket=manual_ticket, automatic=None) == (
        manual_ticket, domain.CANCELLED)


# --- the canonical invoice ----------------------------------------------------------------------

def test_content_hash_is_stable_and_sensitive(make_invoice):
    first = domain.canonical_invoice(make_invoice("X"))
    assert domain.canonical_invoice(make_invoice("X")).content_hash == first.content_hash
    assert domain.canonical_invoice(make_invoice("X", number="other")).content_hash != first.content_hash
    changed_raw = make_invoice("X")
    changed_raw["raw"]["extra"] = 1
    assert domain.canonical_invoice(changed_raw).content_hash != first.content_hash


def test_a_siret_less_supplier_keeps_the_providers_siren(make_invoice):
    invoice = make_invoice()
    invoice["supplier"]["siren"] = ACME[:9]
    canonical = domain.canonical_invoice(invoice)
    assert canonical.supplier_siret is None and canonical.siren == ACME[:9]
    assert domain.canonical_invoice(make_invoice(supplier_siret="12345678900011")).siren is None


# --- what clients see -------------------------------------------------------------------------

def test_visible_changes():
    base = {"number": "1", "amounts": {"ht": Decimal128("1.00")}, "supplier": {"name": "A", "siret": None},
            "state": "linked"}
    assert not domain.visible_changes(base, {**base, "raw": "{}", "provider_status": "paid"})
    assert domain.visible_changes(base, {**base, "amounts": {"ht": Decimal128("1.0")}})
    assert domain.visible_changes(base, {**base, "supplier": {"name": "B", "siret": None}})
    assert domain.visible_changes(base, {**base, "state": "cancelled"})
