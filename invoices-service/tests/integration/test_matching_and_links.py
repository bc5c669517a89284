"""Supplier matching, automatic and manual ticket links, and reconcile, against PLATFORM_DB fixtures."""

from __future__ import annotations

from bobdesk_devtools.testing import user_token
from bson import ObjectId

SIREN = "732829320"


def invoice_of(api, client, platform_id):
    page = api.public(client, invoice_platform_id=platform_id).get_json()
    assert len(page["invoices"]) == 1
    return page["invoices"][0]


def test_exact_siret_same_siren_partner_ambiguous_and_invalid(api, platform, make_invoice, make_siret):
    client, partner_owner = ObjectId(), ObjectId()
    exact = platform.contractor(client, make_siret(SIREN, 1))
    platform.contractor(client, make_siret(SIREN, 2), active=False)  # inactive: only an exact SIRET takes it
    partner = platform.contractor(partner_owner, make_siret("552100554", 1), partners=[client])
    platform.contractor(client, make_siret("404833048", 1))
    platform.contractor(client, make_siret("404833048", 2))  # two with that SIREN: ambiguous
    platform.contractor(ObjectId(), make_siret("380129866", 1))  # another company's: never
    api.ingest(client, [
        make_invoice("exact", supplier_siret=make_siret(SIREN, 1)),
        make_invoice("siren", supplier_siret=make_siret(SIREN, 9)),
        make_invoice("partner", supplier_siret=make_siret("552100554", 5)),
        make_invoice("ambiguous", supplier_siret=make_siret("404833048", 9)),
        make_invoice("foreign", supplier_siret=make_siret("380129866", 1)),
        make_invoice("invalid", supplier_siret=SIREN + "00018"),
    ])
    assert invoice_of(api, client, "exact")["supplier_id"] == str(exact)
    assert invoice_of(api, client, "siren")["supplier_id"] == str(exact)  # the one active with that SIREN
    assert invoice_of(api, client, "partner")["supplier_id"] == str(partner)
    assert invoice_of(api, client, "ambiguous")["supplier_id"] is None
    assert invoice_of(api, client, "foreign")["supplier_id"] is None
    invalid = invoice_of(api, client, "invalid")
    assert invalid["supplier_id"] is None and invalid["supplier"]["siret"] == SIREN + "00018"


def siret_less(make_invoice, platform_id, siren, **changes):
    """An invoice whose provider knows the supplier's SIREN but not its SIRET."""
    invoice = make_invoice(platform_id, **changes)
    invoice["supplier"]["siren"] = siren
    return invoice


def test_a_siret_less_supplier_is_matched_by_the_providers_siren_at_ingestion_and_by_reconcile(
        api, platform, make_invoice, make_siret):
    client = ObjectId()
    platform.contractor(client, make_siret("404833048", 1))
    platform.contractor(client, make_siret("404833048", 2))  # two with that SIREN: ambiguous
    api.ingest(client, [siret_less(make_invoice, "late", SIREN), siret_less(make_invoice, "ambiguous", "404833048")])
    assert invoice_of(api, client, "late")["supplier_id"] is None
    assert api.reconcile(client).get_json() == {"suppliers_rematched": 0, "tickets_linked": 0}
    contractor = platform.contractor(client, make_siret(SIREN, 3))
    assert api.reconcile(client).get_json() == {"suppliers_rematched": 1, "tickets_linked": 0}
    late = invoice_of(api, client, "late")
    assert late["supplier_id"] == str(contractor)
    assert late["supplier"]["siret"] is None  # the public shape is unchanged: no SIRET was given
    assert invoice_of(api, client, "ambiguous")["supplier_id"] is None
    api.ingest(client, [siret_less(make_invoice, "at-ingestion", SIREN)])
    assert invoice_of(api, client, "at-ingestion")["supplier_id"] == str(contractor)


def test_late_contractor_is_matched_by_reconcile_and_reconcile_is_cheap_when_nothing_changed(
        api, platform, make_invoice, make_siret):
    client = ObjectId()
    api.ingest(client, [make_invoice("A", supplier_siret=make_siret(SIREN), order_reference="T-1")])
    assert invoice_of(api, client, "A")["supplier_id"] is None
    assert api.reconcile(client).get_json() == {"suppliers_rematched": 0, "tickets_linked": 0}
    contractor = platform.contractor(client, make_siret(SIREN))
    ticket = platform.ticket(client, "T-1", contractor)
    assert api.reconcile(client).get_json() == {"suppliers_rematched": 1, "tickets_linked": 1}
    invoice = invoice_of(api, client, "A")
    assert invoice["supplier_id"] == str(contractor)
    assert invoice["ticket_id"] == str(ticket) and invoice["state"] == "linked"
    assert api.reconcile(client).get_json() == {"suppliers_rematched": 0, "tickets_linked": 0}


def test_contractor_change_unlinks_an_automatic_link_the_ticket_no_longer_allows(
        api, platform, make_invoice, make_siret):
    client = ObjectId()
    first = platform.contractor(client, make_siret(SIREN, 2))
    platform.ticket(client, "T-1", first)
    api.ingest(client, [make_invoice("A", supplier_siret=make_siret(SIREN, 1), order_reference="T-1")])
    assert invoice_of(api, client, "A")["state"] == "linked"
    exact = platform.contractor(client, make_siret(SIREN, 1))  # the exact SIRET now wins
    assert api.reconcile(client).get_json()["suppliers_rematched"] == 1
    invoice = invoice_of(api, client, "A")
    assert invoice["supplier_id"] == str(exact)
    assert invoice["state"] == "ticket_unmatched" and invoice["ticket_id"] is None


def test_automatic_links(api, platform, make_invoice, make_siret):
    client = ObjectId()
    supplier = platform.contractor(client, make_siret(SIREN))
    free = platform.ticket(client, "T-free")
    mine = platform.ticket(client, "T-mine", supplier)
    platform.ticket(client, "T-other", ObjectId())
    platform.ticket(ObjectId(), "T-foreign")
    siret = make_siret(SIREN)
    api.ingest(client, [
        make_invoice("free", order_reference="T-free"),
        make_invoice("mine", supplier_siret=siret, order_reference="T-mine"),
        make_invoice("other", supplier_siret=siret, order_reference="T-other"),
        make_invoice("foreign", order_reference="T-foreign"),
        make_invoice("cancelled", order_reference="T-free", cancelled=True),
    ])
    assert invoice_of(api, client, "free")["ticket_id"] == str(free)
    assert invoice_of(api, client, "mine")["ticket_id"] == str(mine)
    assert invoice_of(api, client, "other")["state"] == "ticket_unmatched"
    assert invoice_of(api, client, "foreign")["state"] == "ticket_unmatched"
    cancelled = invoice_of(api, client, "cancelled")
    assert cancelled["state"] == "cancelled" and cancelled["ticket_id"] is None


def test_manual_link_and_unlink_survive_ingestion_and_reconcile(api, platform, make_invoice):
    client = ObjectId()
    automatic = platform.ticket(client, "T-1")
    chosen = platform.ticket(client, "T-2")
    api.ingest(client, [make_invoice("A", order_reference="T-1"), make_invoice("B", order_reference="T-1")])
    a, b = invoice_of(api, client, "A"), invoice_of(api, client, "B")
    assert a["ticket_id"] == str(automatic)

    linked = api.jarvis("POST", client, f"/{a['id']}/link", json={"ticket": str(chosen)})
    assert linked.status_code == 200
    assert linked.get_json()["invoice"]["ticket_id"] == str(chosen)
    unlinked = api.jarvis("DELETE", client, f"/{b['id']}/link")
    assert unlinked.status_code == 200
    assert unlinked.get_json()["invoice"]["state"] == "ticket_unmatched"

    api.ingest(client, [make_invoice("A", order_reference="T-1", number="changed"),
                        make_invoice("B", order_reference="T-1", number="changed")])
    api.reconcile(client)
    platform.ticket(client, "T-9")  # tickets changed: the link phase runs again
    api.reconcile(client)
    assert invoice_of(api, client, "A")["ticket_id"] == str(chosen)
    b_after = invoice_of(api, client, "B")
    assert b_after["ticket_id"] is None and b_after["number"] == "changed"


def test_link_refusals_and_tenant_isolation(api, http, platform, make_invoice):
    client, other = ObjectId(), ObjectId()
    mine = platform.ticket(client, "T-1")
    theirs = platform.ticket(other, "T-1")
    api.ingest(client, [make_invoice("A"), make_invoice("X", cancelled=True)])
    api.ingest(other, [make_invoice("B")])
    a, x = invoice_of(api, client, "A"), invoice_of(api, client, "X")
    b = invoice_of(api, other, "B")
    assert api.jarvis("POST", client, f"/{a['id']}/link", json={"ticket": str(theirs)}).status_code == 404
    assert api.jarvis("POST", client, f"/{b['id']}/link", json={"ticket": str(mine)}).status_code == 404
    assert api.jarvis("DELETE", client, f"/{b['id']}/link").status_code == 404
    assert api.jarvis("POST", client, "/nope/link", json={"ticket": str(mine)}).status_code == 404
    assert api.jarvis("POST", client, f"/{a['id']}/link", json={"ticket": "nope"}).status_code == 400
    assert api.jarvis("POST", client, f"/{a['id']}/link", json={"ticket": str(mine), "x": 1}).status_code == 400
    assert api.jarvis("POST", client, f"/{a['id']}/link", json={}).status_code == 400
    cancelled = api.jarvis("POST", client, f"/{x['id']}/link", json={"ticket": str(mine)})
    assert cancelled.status_code == 409 and cancelled.get_json()["error"]["code"] == "invoice_cancelled"
    # Authentication and permission.
    url = f"/invoices/{a['id']}/link"
    assert http.post(url, json={"ticket": str(mine)}).status_code == 401
    no_permission = {"Authorization": f"Bearer {user_token(client, permissions=['read'])}"}
    assert http.post(url, json={"ticket": str(mine)}, headers=no_permission).status_code == 403
    http.set_cookie("session", user_token(client))
    assert http.post(url, json={"ticket": str(mine)}).status_code == 200
    assert invoice_of(api, other, "B")["ticket_id"] is None
