"""The Pennylane simulator speaks the pinned subset of Pennylane's API v2, and its admin API drives it."""

import json
import threading
from decimal import Decimal

import pytest
from bobdesk_simulators.pennylane import demo_data
from bobdesk_simulators.pennylane.__main__ import load_sim_settings
from bobdesk_simulators.pennylane.app import API_PREFIX, build_app
from bobdesk_simulators.pennylane.state import RateLimit, Store


class FakeWall:
    """Unix seconds the test moves by hand (rate-limit windows, no waiting)."""

    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def wall():
    return FakeWall()


@pytest.fixture
def store(wall):
    store = Store(seed=7, rate_limit=RateLimit(limit=1000, window_seconds=5), wall=wall)
    store.load_demo()
    return store


@pytest.fixture
def client(store):
    return build_app(store, load_sim_settings({})).test_client()


def auth(key=demo_data.DEMO_API_KEY):
    return {"Authorization": f"Bearer {key}"}


def get(client, path, key=demo_data.DEMO_API_KEY, **params):
    return client.get(API_PREFIX + path, query_string=params, headers=auth(key))


def walk(client, path, key=demo_data.DEMO_API_KEY, **params):
    items, cursor = [], None
    while True:
        # Later pages carry the cursor alone: start_date with a cursor is 400.
        query = {**{k: v for k, v in params.items() if k != "start_date"}, "cursor": cursor} if cursor else params
        page = get(client, path, key, **query).get_json()
        items += page["items"]
        assert page["has_more"] is (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items


def id_filter(ids):
    return json.dumps([{"field": "id", "operator": "in", "value": ids}])


def test_a_wrong_or_missing_token_is_401(client):
    assert client.get(API_PREFIX + "/supplier_invoices").status_code == 401
    assert get(client, "/supplier_invoices", key="nope").status_code == 401
    assert client.get(API_PREFIX + "/suppliers/1", headers={"Authorization": "Basic abc"}).status_code == 401


def test_listing_is_by_id_ascending_and_pages_cover_everything(client):
    items = walk(client, "/supplier_invoices", limit=7)
    ids = [i["id"] for i in items]
    assert len(ids) == demo_data.DEMO_INVOICE_COUNT and ids == sorted(set(ids))


def test_the_id_in_filter_selects_and_pages(client, store):
    ids = sorted(store.account("demo").invoices)
    wanted = [ids[3], ids[0], ids[9], 999_999, ids[3]]
    items = walk(client, "/supplier_invoices", filter=id_filter(wanted), limit=2)
    assert [i["id"] for i in items] == sorted({ids[0], ids[3], ids[9]})


@pytest.mark.parametrize("raw", [
    "nope", "{}", "[]", json.dumps([{"field": "id", "operator": "in"}]),
    json.dumps([{"field": "id", "operator": "eq", "value": [1]}]),
    json.dumps([{"field": "label", "operator": "in", "value": [1]}]),
    json.dumps([{"field": "id", "operator": "in", "value": ["1"]}]),
    json.dumps([{"field": "id", "operator": "in", "value": []}]),
    json.dumps([{"field": "id", "operator": "in", "value": list(range(101))}]),
    json.dumps([{"field": "id", "operator": "in", "value": [True]}]),
])
def test_a_malformed_filter_is_400(client, raw):
    answer = get(client, "/supplier_invoices", filter=raw)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_filter"


@pytest.mark.parametrize("path, query", [
    ("/supplier_invoices", {"limit": 0}), ("/supplier_invoices", {"limit": 101}),
    ("/supplier_invoices", {"cursor": "%%%"}), ("/supplier_invoices", {"page": 2}),
    ("/changelogs/supplier_invoices", {"limit": 1001}), ("/changelogs/supplier_invoices", {"start_date": "yesterday"}),
])
def test_bad_parameters_are_400(client, path, query):
    assert get(client, path, **query).status_code == 400


def test_one_invoice_and_one_supplier_or_404(client, store):
    invoice = next(iter(store.account("demo").invoices.values()))
    assert get(client, f"/supplier_invoices/{invoice['id']}").get_json() == invoice
    supplier = get(client, f"/suppliers/{invoice['supplier']['id']}").get_json()
    assert set(supplier) == {"id", "name", "establishment_no", "reg_no", "vat_number", "iban"}
    assert get(client, "/supplier_invoices/1").status_code == 404
    assert get(client, "/suppliers/1").status_code == 404


def test_accounts_are_isolated(client):
    other = client.post("/_admin/accounts", json={"id": "other", "invoices": 3}).get_json()
    assert len(walk(client, "/supplier_invoices", other["api_key"])) == 3
    demo_id = walk(client, "/supplier_invoices")[0]["id"]
    assert get(client, f"/supplier_invoices/{demo_id}", other["api_key"]).status_code == 404
    assert client.post("/_admin/accounts", json={"id": "other"}).status_code == 409


def test_the_changelog_records_every_operation_in_order(client, store):
    oldest = walk(client, "/changelogs/supplier_invoices", limit=1000)
    added = client.post("/_admin/accounts/demo/invoices", json={"fields": {"label": "Nouvelle"}}).get_json()
    client.patch(f"/_admin/accounts/demo/invoices/{added['id']}", json={"fields": {"currency_amount": "1.0"}})
    archived = client.post(f"/_admin/accounts/demo/invoices/{added['id']}/archive").get_json()
    assert archived["archived_at"] and archived["updated_at"] > added["updated_at"]
    assert client.delete(f"/_admin/accounts/demo/invoices/{added['id']}").status_code == 204
    events = walk(client, "/changelogs/supplier_invoices", limit=3)
    mine = [e for e in events if e["id"] == added["id"]]
    assert [e["operation"] for e in mine] == ["insert", "update", "update", "delete"]
    times = [e["processed_at"] for e in events]
    assert times == sorted(times) and len(events) == len(oldest) + 4
    assert get(client, f"/supplier_invoices/{added['id']}").status_code == 404
    assert added["id"] not in [i["id"] for i in walk(client, "/supplier_invoices", limit=100)]


def test_start_date_is_inclusive_and_excludes_a_cursor(client):
    events = walk(client, "/changelogs/supplier_invoices", limit=1000)
    pivot = events[5]["processed_at"]
    since = walk(client, "/changelogs/supplier_invoices", start_date=pivot, limit=2)
    assert since == events[5:]
    cursor = get(client, "/changelogs/supplier_invoices", limit=1).get_json()["next_cursor"]
    both = get(client, "/changelogs/supplier_invoices", start_date=pivot, cursor=cursor)
    assert both.status_code == 400


def test_changes_older_than_the_retention_are_gone_and_an_older_start_is_422(client, store, wall):
    events = walk(client, "/changelogs/supplier_invoices", limit=1000)
    assert events  # the demo's last 28 days
    wall.now += 29 * 86400
    expired = get(client, "/changelogs/supplier_invoices", start_date=events[0]["processed_at"])
    assert expired.status_code == 422
    assert walk(client, "/changelogs/supplier_invoices") == []  # no start_date: the oldest kept
    assert len(walk(client, "/supplier_invoices", limit=100)) == demo_data.DEMO_INVOICE_COUNT


def test_expire_and_a_short_retention_make_older_reads_422(client, wall):
    cursor = get(client, "/changelogs/supplier_invoices", limit=1).get_json()["next_cursor"]
    before = walk(client, "/changelogs/supplier_invoices")[-1]["processed_at"]
    assert client.post("/_admin/accounts/demo/changelog/expire").get_json()["dropped"] > 0
    assert get(client, "/changelogs/supplier_invoices", start_date=before).status_code == 422
    assert get(client, "/changelogs/supplier_invoices", cursor=cursor).status_code == 422
    client.post("/_admin/accounts/demo/invoices", json={})
    assert len(walk(client, "/changelogs/supplier_invoices")) == 1
    client.patch("/_admin/accounts/demo", json={"changelog_retention_seconds": 60})
    wall.now += 61
    assert walk(client, "/changelogs/supplier_invoices") == []


def test_every_answer_carries_the_rate_limit_and_the_budget_is_per_token_and_window(store, wall):
    wall.now = 1_800_000_001.0  # one second into a window that ends at ...005
    client = build_app(store, load_sim_settings({})).test_client()
    client.patch("/_admin/accounts/demo", json={"rate_limit": {"limit": 3, "window_seconds": 5}})
    other = client.post("/_admin/accounts", json={"id": "other"}).get_json()["api_key"]
    answers = [get(client, "/supplier_invoices/1") for _ in range(4)]  # a 404 spends budget too
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["ratelimit-limit"] for a in answers} == {"3"}
    assert {a.headers["ratelimit-reset"] for a in answers} == {"1800000005"}
    assert answers[3].headers["retry-after"] == "4"
    assert get(client, "/supplier_invoices", other).status_code == 200  # another token, another budget
    wall.now = 1_800_000_005.0
    assert get(client, "/supplier_invoices").headers["ratelimit-remaining"] == "2"
    stats = client.get("/_admin/accounts/demo/stats").get_json()
    assert (stats["rate_limited"], stats["requests"]) == (1, 5)


def test_faults_throttle_error_malformed_by_endpoint(client):
    client.put("/_admin/accounts/demo/faults", json={"throttle_rate": 1, "retry_after": 7})
    throttled = get(client, "/supplier_invoices")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"
    assert "ratelimit-remaining" in throttled.headers
    client.put("/_admin/accounts/demo/faults", json={"error_rate": 1})
    assert get(client, "/changelogs/supplier_invoices").status_code in (500, 502, 503)
    client.put("/_admin/accounts/demo/faults", json={"malformed_rate": 1})
    malformed = get(client, "/supplier_invoices")
    body = malformed.get_json(silent=True)
    assert malformed.status_code == 200 and (body is None or not isinstance(body.get("items"), list)
                                             or not isinstance(body.get("has_more"), bool))
    client.put("/_admin/accounts/demo/faults", json={"error_rate": 1, "endpoints": ["supplier"]})
    assert get(client, "/supplier_invoices").status_code == 200
    stats = client.get("/_admin/accounts/demo/stats").get_json()
    assert (stats["throttled"], stats["errors"], stats["malformed"]) == (1, 1, 1)
    assert client.put("/_admin/accounts/demo/faults", json={"error_rate": 2}).status_code == 400
    assert client.put("/_admin/accounts/demo/faults", json={"endpoints": ["nope"]}).status_code == 400


def test_concurrent_requests_per_token_are_recorded(store):
    app = build_app(store, load_sim_settings({}))
    app.test_client().put("/_admin/accounts/demo/faults", json={"slow_rate": 1, "slow_seconds": 0.3})
    threads = [threading.Thread(target=lambda: get(app.test_client(), "/supplier_invoices")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = app.test_client().get("/_admin/accounts/demo/stats").get_json()
    assert stats["max_concurrent"] == 3 and stats["in_flight"] == 0 and stats["list_requests"] == 3


def test_raw_documents_are_stored_as_given_and_suppliers_can_be_added(client):
    raw = client.post("/_admin/accounts/demo/invoices", json={"raw": {"currency_amount": "lots"}}).get_json()
    assert raw["currency_amount"] == "lots" and isinstance(raw["id"], int)
    assert client.post("/_admin/accounts/demo/invoices", json={"raw": {"id": "x"}}).status_code == 409
    supplier = client.post("/_admin/accounts/demo/suppliers", json={"fields": {"name": "SIREN seul",
                                                                               "reg_no": "443061841"}}).get_json()
    assert (supplier["establishment_no"], supplier["reg_no"]) == (None, "443061841")
    renamed = client.patch(f"/_admin/accounts/demo/suppliers/{supplier['id']}", json={"fields": {"name": "B"}})
    assert renamed.get_json()["name"] == "B"
    assert client.patch("/_admin/accounts/demo/suppliers/1", json={"fields": {}}).status_code == 404
    assert client.post("/_admin/accounts/nope/invoices", json={}).status_code == 404


def test_bulk_generation_gives_increasing_ids_and_one_insert_each(client):
    api_key = client.post("/_admin/accounts", json={"id": "bulk", "invoices": 150}).get_json()["api_key"]
    assert client.post("/_admin/accounts/bulk/invoices/generate", json={"count": 100}).status_code == 201
    assert len(walk(client, "/supplier_invoices", api_key, limit=100)) == 250
    assert len(walk(client, "/changelogs/supplier_invoices", api_key, limit=1000)) == 250


def test_demo_invoices_are_consistent_and_one_supplier_has_only_a_siren(store):
    account = store.account("demo")
    for invoice in account.invoices.values():
        assert Decimal(invoice["currency_amount_before_tax"]) + Decimal(invoice["currency_tax"]) \
            == Decimal(invoice["currency_amount"])
        assert invoice["supplier"]["id"] in account.suppliers
    assert any(i["archived_at"] for i in account.invoices.values())
    siren_only = [s for s in account.suppliers.values() if s["reg_no"] and not s["establishment_no"]]
    assert siren_only and all(len(s["reg_no"]) == 9 for s in siren_only)
    used = {i["supplier"]["id"] for i in account.invoices.values()}
    assert used & {s["id"] for s in siren_only}
