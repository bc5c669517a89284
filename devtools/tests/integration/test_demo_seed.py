"""The demo's PLATFORM_DB seed: contractors that match the simulator's suppliers, tickets its invoices quote."""

from bobdesk_devtools import demo
from bobdesk_simulators.yooz import demo_data
from ingest_worker.config import load_settings


def test_seeding_is_idempotent_and_matches_the_simulator(test_env, mongo_client):
    settings = load_settings(test_env)
    demo.seed_platform(settings)
    demo.seed_platform(settings)
    db = mongo_client[test_env["PLATFORM_DB"]]
    contractors = list(db.contractors.find())
    tickets = list(db.tickets.find())
    assert len(contractors) == 6 and len(tickets) == len(demo_data.DEMO_TICKET_NUMBERS)
    supplier_sirets = {s.siret for s in demo_data.SUPPLIERS if s.siret}
    exact = [c for c in contractors if c["siret"] in supplier_sirets and c["client"] == demo.DEMO_COMPANY]
    assert len(exact) >= 3
    assert any(c["client"] != demo.DEMO_COMPANY and demo.DEMO_COMPANY in c["partners"] for c in contractors)
    siren_only = [c for c in contractors if c["siret"] not in supplier_sirets and c["isActive"]]
    assert siren_only and siren_only[0]["siret"][:9] in {s[:9] for s in supplier_sirets}
    assert {t["number"] for t in tickets} == set(demo_data.DEMO_TICKET_NUMBERS)
    assert all(t["client"] == demo.DEMO_COMPANY for t in tickets)
    quoted = {i["order_reference"] for i in demo_data.demo_invoices(demo_data.dt.datetime.now(demo_data.dt.UTC))}
    assert quoted & {t["number"] for t in tickets}

