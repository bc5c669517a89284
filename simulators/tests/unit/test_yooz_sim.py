"""The simulator speaks CONTRACTS section 5 and its admin API drives it."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from bobdesk_simulators.yooz import demo_data
from bobdesk_simulators.yooz.__main__ import load_sim_settings
from bobdesk_simulators.yooz.app import build_app
from bobdesk_simulators.yooz.state import Store
from ingest_worker.providers.http import ProviderHttp, RetryPolicy
from ingest_worker.providers.yooz import YoozAdapter


@pytest.fixture
def store():
    store = Store(seed=7)
    store.load_demo()
    return store


@pytest.fixture
def client(store):
    return build_app(store, load_sim_settings({})).test_client()


def auth(key=demo_data.DEMO_API_KEY):
    return {"Authorization": f"Bearer {key}"}


def list_all(client, key=demo_data.DEMO_API_KEY, **params):
    items, cursor = [], None
    while True:
        query = dict(params, limit=params.get("limit", 7))
        if cursor:
            query["cursor"] = cursor
        page = client.get("/invoices", query_string=query, headers=auth(key)).get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_a_wrong_or_missing_key_is_401(client):
    assert client.get("/invoices").status_code == 401
    assert client.get("/invoices", headers=auth("nope")).status_code == 401
    assert client.get("/invoices/YZ-1", headers={"Authorization": "Basic abc"}).status_code == 401


def test_listing_is_ordered_by_updated_at_then_id_and_pages_cover_everything(client):
    items = list_all(client)
    assert len(items) == demo_data.DEMO_INVOICE_COUNT
    keys = [(i["updated_at"], i["id"]) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_updated_since_is_inclusive(client):
    items = list_all(client)
    pivot = items[10]["updated_at"]
    since = list_all(client, updated_since=pivot)
    assert since[0]["updated_at"] == pivot
    assert all(i["updated_at"] >= pivot for i in since)
    assert len(since) == len([i for i in items if i["updated_at"] >= pivot])


def test_an_update_during_paging_moves_the_invoice_to_the_end(client, store):
    first = client.get("/invoices", query_string={"limit": 5}, headers=auth()).get_json()
    moved = first["items"][0]["id"]
    store.update_invoice("demo", moved, {"status": "paid"})
    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = client.get("/invoices", query_string={"limit": 5, "cursor": cursor}, headers=auth()).get_json()
        rest += page["items"]
        cursor = page["next_cursor"]
    assert rest[-1]["id"] == moved and rest[-1]["status"] == "paid"


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "%%%"},
                                   {"updated_since": "yesterday"}, {"page": 2}])
def test_bad_listing_parameters_are_400(client, query):
    assert client.get("/invoices", query_string=query, headers=auth()).status_code == 400


def test_get_one_invoice_or_404(client, store):
    identifier = next(iter(store.account("demo").invoices))
    assert client.get(f"/invoices/{identifier}", headers=auth()).get_json()["id"] == identifier
    assert client.get("/invoices/YZ-0000-00000", headers=auth()).status_code == 404


def test_accounts_are_isolated(client):
    other = client.post("/_admin/accounts", json={"id": "other", "invoices": 3}).get_json()
    assert len(list_all(client, other["api_key"])) == 3
    assert client.post("/_admin/accounts", json={"id": "other"}).status_code == 409
    assert client.post("/_admin/accounts", json={"api_key": other["api_key"]}).status_code == 409


def test_admin_add_update_delete(client):
    added = client.post("/_admin/accounts/demo/invoices", json={"fields": {"order_reference": "T-9"}}).get_json()
    assert added["order_reference"] == "T-9" and added["status"]
    updated = client.patch(f"/_admin/accounts/demo/invoices/{added['id']}",
                           json={"fields": {"total_incl_tax": "1.00"}}).get_json()
    assert updated["updated_at"] > added["updated_at"]
    deleted = client.delete(f"/_admin/accounts/demo/invoices/{added['id']}").get_json()
    assert deleted["status"] == "deleted" and deleted["updated_at"] > updated["updated_at"]
    assert list_all(client)[-1]["id"] == added["id"]  # still listed, as deleted
    assert client.patch("/_admin/accounts/demo/invoices/none", json={"fields": {}}).status_code == 404
    assert client.post("/_admin/accounts/nope/invoices", json={}).status_code == 404


def test_raw_documents_are_stored_as_given(client):
    raw = client.post("/_admin/accounts/demo/invoices", json={"raw": {"id": "BAD-1", "total_tax": "lots"}}).get_json()
    assert raw["total_tax"] == "lots" and raw["updated_at"]


def test_bulk_generation_gives_distinct_increasing_times(client):
    api_key = client.post("/_admin/accounts", json={"id": "bulk", "invoices": 150}).get_json()["api_key"]
    assert client.post("/_admin/accounts/bulk/invoices/generate", json={"count": 100}).status_code == 201
    items = list_all(client, api_key, limit=100)
    assert len(items) == 250 and len({i["updated_at"] for i in items}) == 250


def test_faults_throttle_error_malformed(client):
    client.put("/_admin/accounts/demo/faults", json={"throttle_rate": 1, "retry_after": 7})
    throttled = client.get("/invoices", headers=auth())
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    client.put("/_admin/accounts/demo/faults", json={"error_rate": 1})
    assert client.get("/invoices", headers=auth()).status_code in (500, 502, 503)
    client.put("/_admin/accounts/demo/faults", json={"malformed_rate": 1})
    malformed = client.get("/invoices", headers=auth())
    assert malformed.status_code == 200
    body = malformed.get_json(silent=True)
    assert body is None or not isinstance(body.get("items"), list)
    client.put("/_admin/accounts/demo/faults", json={"error_rate": 1, "endpoints": ["get"]})
    assert client.get("/invoices", headers=auth()).status_code == 200
    stats = client.get("/_admin/accounts/demo/stats").get_json()
    assert (stats["throttled"], stats["errors"], stats["malformed"]) == (1, 1, 1)
    assert client.put("/_admin/accounts/demo/faults", json={"error_rate": 2}).status_code == 400


def test_concurrent_requests_per_key_are_recorded(store):
    client_app = build_app(store, load_sim_settings({}))
    client_app.test_client().put("/_admin/accounts/demo/faults", json={"slow_rate": 1, "slow_seconds": 0.3})
    threads = [threading.Thread(target=lambda: client_app.test_client().get("/invoices", headers=auth()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = client_app.test_client().get("/_admin/accounts/demo/stats").get_json()
    assert stats["max_concurrent"] == 3 and stats["in_flight"] == 0 and stats["list_requests"] == 3


def test_demo_suppliers_have_luhn_valid_sirets_and_sirens():
    with_siret = [s for s in demo_data.SUPPLIERS if s.siret]
    assert len(with_siret) >= 6
    for supplier in with_siret:
        assert len(supplier.siret) == 14
        assert demo_data.luhn_valid(supplier.siret) and demo_data.luhn_valid(supplier.siret[:9])
    assert demo_data.luhn_valid("73282932000074")  # a real SIRET, as a check of the check
    assert not demo_data.luhn_valid("73282932000075")


def test_demo_ibans_have_valid_check_digits():
    for supplier in demo_data.SUPPLIERS:
        if supplier.iban:
            rearranged = supplier.iban[4:] + supplier.iban[:4]
            assert int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def test_demo_invoices_are_consistent_canonical_and_quote_demo_tickets():
    invoices = demo_data.demo_invoices(dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    references = {i["order_reference"] for i in invoices} - {None}
    assert references and references <= set(demo_data.DEMO_TICKET_NUMBERS)
    adapter = YoozAdapter("http://sim.invalid", ProviderHttp("yooz", timeout=(1, 1), policy=RetryPolicy()))
    assert {adapter.to_canonical(i)["provider_status"] for i in invoices} >= {"validated", "rejected", "deleted"}
    for invoice in invoices:
        assert Decimal(invoice["total_excl_tax"]) + Decimal(invoice["total_tax"]) == Decimal(invoice["total_incl_tax"])
        assert sum(Decimal(line["total_excl_tax"]) for line in invoice["lines"]) == Decimal(invoice["total_excl_tax"])
