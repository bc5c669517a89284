"""The public API of the seed (and jarvis' identical reads): filters, boundaries, 400s, pagination,
tenant isolation, exact amounts, one database command per page and the indexes behind it."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from bobdesk_devtools.testing import CommandCounter, public_token, service_token, user_token
from bson import ObjectId
from invoices_service.domain import ListFilters
from invoices_service.embedded_server import list_hint
from invoices_service.repository import InvoiceRepository, PlatformRepository, list_query
from invoices_service.schemas import MAX_MILLIS
from invoices_service.services import InvoiceService
from pymongo import MongoClient

T0 = dt.datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=dt.UTC)


def ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


@pytest.fixture
def dataset(app, api, platform, make_invoice, make_siret):
    """Three batches a minute apart (created_at T0, T0+1m, T0+2m) for one company, one for another."""
    service = app.extensions["invoice_service"]
    client, other = ObjectId(), ObjectId()
    platform.ticket(client, "T-1")
    siret = make_siret("732829320")
    batches = [
        [make_invoice("A", issue_date="2024-01-10", number="N-1", supplier_siret=siret, order_reference="T-1"),
         make_invoice("B", issue_date="2024-02-10", number="N-2",
                      amounts={"ht": "12345678901234.56", "tva": "0.10", "ttc": "12345678901234.66"})],
        [make_invoice("C", issue_date="2024-03-10", number="N-1"), make_invoice("D", issue_date="2024-03-11")],
        [make_invoice("E", issue_date="2024-04-10", cancelled=True)],
    ]
    for minutes, batch in enumerate(batches):
        service.clock = lambda minutes=minutes: T0 + dt.timedelta(minutes=minutes)
        api.ingest(client, batch)
    service.clock = lambda: T0 + dt.timedelta(minutes=3)
    api.ingest(client, [make_invoice("F", issue_date="2024-04-11")], provider="other")
    api.ingest(other, [make_invoice("A"), make_invoice("Z")])
    return client, other


def ids(page):
    return [invoice["invoice_platform_id"] for invoice in page["invoices"]]


def listed(api, client, **params):
    response = api.public(client, **params)
    assert response.status_code == 200, response.get_json()
    return ids(response.get_json())


def test_list_shape_and_exact_amounts(api, dataset):
    client, _ = dataset
    response = api.public(client)
    assert response.mimetype == "application/json"
    page = json.loads(response.data, parse_float=Decimal)
    assert ids(page) == ["A", "B", "C", "D", "E", "F"]
    assert page["cursor"] == page["invoices"][-1]["id"]
    b = page["invoices"][1]
    assert b["amounts"] == {"ht": Decimal("12345678901234.56"), "tva": Decimal("0.10"),
                            "ttc": Decimal("12345678901234.66")}
    assert b'"tva":0.10' in response.data
    assert set(b) == {"id", "provider", "invoice_platform_id", "number", "issue_date", "due_date", "currency",
                      "amounts", "supplier", "state", "ticket_id", "supplier_id", "created_at", "updated_at"}
    assert b["issue_date"] == "2024-02-10T00:00:00.000Z"
    assert b["created_at"] == "2024-05-01T10:00:00.250Z"
    assert page["invoices"][0]["state"] == "linked"


def test_every_filter(api, dataset):
    client, _ = dataset
    assert listed(api, client, association="unmatched") == ["B", "C", "D", "F"]
    assert listed(api, client, association="linked") == ["A"]
    assert listed(api, client, association="all") == ["A", "B", "C", "D", "E", "F"]
    assert listed(api, client, provider="other") == ["F"]
    assert listed(api, client, supplier_siret=api_siret(api, client)) == ["A"]
    assert listed(api, client, number="N-1") == ["A", "C"]
    assert listed(api, client, invoice_platform_id="C") == ["C"]
    march = dt.datetime(2024, 3, 10, tzinfo=dt.UTC)
    # Bounds are half-open: after <= date < before.
    assert listed(api, client, issued_after=ms(march)) == ["C", "D", "E", "F"]
    assert listed(api, client, issued_before=ms(march)) == ["A", "B"]
    assert listed(api, client, issued_after=ms(march), issued_before=ms(march) + 1) == ["C"]
    assert listed(api, client, issued_after=ms(march), issued_before=ms(march)) == []
    minute = dt.timedelta(minutes=1)
    assert listed(api, client, created_after=ms(T0 + minute)) == ["C", "D", "E", "F"]
    assert listed(api, client, created_after=ms(T0 + minute) + 1) == ["E", "F"]
    assert listed(api, client, created_before=ms(T0 + minute)) == ["A", "B"]
    assert listed(api, client, created_before=ms(T0 + minute) + 1) == ["A", "B", "C", "D"]
    assert listed(api, client, created_after=ms(T0 + minute), created_before=ms(T0 + 2 * minute)) == ["C", "D"]
    assert listed(api, client, updated_after=ms(T0 + 2 * minute)) == ["E", "F"]
    assert listed(api, client, updated_before=ms(T0 + minute)) == ["A", "B"]
    # Combined.
    assert listed(api, client, association="unmatched", number="N-1", issued_after=ms(march)) == ["C"]
    assert listed(api, client, association="linked", provider="other") == []


LAST_ID_SECOND_MS = 0xFFFFFFFF * 1000  # 2106-02-07T06:28:15Z, the last second an ObjectId carries


@pytest.mark.parametrize("millis", [0, 999, LAST_ID_SECOND_MS - 1, LAST_ID_SECOND_MS, LAST_ID_SECOND_MS + 999,
                                    LAST_ID_SECOND_MS + 1000, 17592186044417, MAX_MILLIS - 1000, MAX_MILLIS])
def test_created_bounds_anywhere_in_the_accepted_range(api, dataset, millis):
    """Every millisecond the schema takes is a 200, including dates past the ObjectId's 2106 horizon."""
    client, _ = dataset
    everything = ["A", "B", "C", "D", "E", "F"]
    late = millis > ms(T0 + dt.timedelta(minutes=3))
    assert listed(api, client, created_before=millis) == (everything if late else [])
    assert listed(api, client, created_after=millis) == ([] if late else everything)
    assert listed(api, client, created_after=0, created_before=millis) == (everything if late else [])
    assert listed(api, client, created_after=millis, created_before=MAX_MILLIS) == ([] if late else everything)


def api_siret(api, client):
    return api.public(client, invoice_platform_id="A").get_json()["invoices"][0]["supplier"]["siret"]


def test_pagination_walk_limits_and_end(api, dataset):
    client, _ = dataset
    seen, cursor = [], None
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = api.public(client, **params).get_json()
        if not page["invoices"]:
            assert page["cursor"] is None
            break
        assert len(page["invoices"]) <= 2
        assert page["cursor"] == page["invoices"][-1]["id"]
        seen += ids(page)
        cursor = page["cursor"]
    assert seen == ["A", "B", "C", "D", "E", "F"]
    assert len(listed(api, client, limit=1)) == 1
    assert len(listed(api, client, limit=200)) == 6
    assert len(listed(api, client)) == 6  # default 50


def test_pagination_while_inserting_yields_every_earlier_invoice_once(api, app, dataset, make_invoice):
    client, _ = dataset
    app.extensions["invoice_service"].clock = lambda: T0 + dt.timedelta(minutes=10)
    seen, cursor, added = [], None, 0
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = api.public(client, **params).get_json()
        if not page["invoices"]:
            break
        seen += ids(page)
        cursor = page["cursor"]
        if added < 4:
            api.ingest(client, [make_invoice(f"new-{added}")])  # arrives during the walk
            added += 1
    earlier = ["A", "B", "C", "D", "E", "F"]
    assert [x for x in seen if x in earlier] == earlier
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("params", [
    {"association": "some"}, {"association": ""}, {"limit": 0}, {"limit": 201}, {"limit": "ten"},
    {"limit": "5.0"}, {"limit": "-1"}, {"limit": ""}, {"cursor": "nope"}, {"cursor": "z" * 24},
    {"issued_after": "yesterday"}, {"issued_after": "-1"}, {"issued_before": "1.5"},
    {"created_after": "253402300800000"}, {"updated_before": ""}, {"provider": ""}, {"number": "x" * 501},
    {"unknown": "1"}, {"cursor": "64B2E4D19AB7E72A4FB4AC20"},
])
def test_invalid_parameters_are_400(api, params):
    client = ObjectId()
    for response in (api.public(client, **params), api.jarvis("GET", client, **params)):
        assert response.status_code == 400, params
        assert response.get_json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("query", ["limit=1&limit=200", "limit=200&limit=1", "provider=yooz&provider=yooz"])
def test_a_repeated_query_parameter_is_400_in_any_order(api, query):
    client = ObjectId()
    for path in ("/api/v3.0/invoices", "/invoices"):
        token = public_token(client) if path.startswith("/api") else user_token(client)
        response = api.http.get(f"{path}?{query}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("name", ["issued", "created", "updated"])
def test_an_inverted_range_is_an_empty_page(api, dataset, name):
    """Each bound is valid alone (the document says so): together they select nothing, not a 400."""
    client, _ = dataset
    assert listed(api, client, **{f"{name}_after": 2000, f"{name}_before": 1000}) == []


def test_retrieve_and_tenant_isolation(api, dataset):
    client, other = dataset
    mine = api.public(client, invoice_platform_id="A").get_json()["invoices"][0]
    theirs = api.public(other, invoice_platform_id="A").get_json()["invoices"][0]
    assert api.public(client, f"/{mine['id']}").get_json() == {"invoice": mine}
    assert api.jarvis("GET", client, f"/{mine['id']}").get_json() == {"invoice": mine}
    for path in (f"/{theirs['id']}", f"/{ObjectId()}", "/nope", "/" + "g" * 24, f"/{mine['id'].upper()}"):
        for response in (api.public(client, path), api.jarvis("GET", client, path)):
            assert response.status_code == 404
            error = response.get_json()["error"]
            assert error["code"] == "not_found" and path[1:].lower() not in error["message"].lower()
    assert listed(api, other) == ["A", "Z"]
    assert ids(api.jarvis("GET", other).get_json()) == ["A", "Z"]
    assert api.jarvis("GET", client, invoice_platform_id="A").get_json()["invoices"] == [mine]


def test_tokens(http, dataset):
    client, _ = dataset
    for path in ("/api/v3.0/invoices", f"/api/v3.0/invoices/{ObjectId()}"):
        assert http.get(path).status_code == 401
        for token in (user_token(client), service_token(), "x.y.z"):
            assert http.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 401
        no_scope = public_token(client, scope="tickets:read")
        assert http.get(path, headers={"Authorization": f"Bearer {no_scope}"}).status_code == 403
        expired = public_token(client, ttl_seconds=-120)
        assert http.get(path, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    for path in ("/invoices", f"/invoices/{ObjectId()}"):
        assert http.get(path).status_code == 401
        assert http.get(path, headers={"Authorization": f"Bearer {public_token(client)}"}).status_code == 401
        reader = user_token(client, permissions=["tickets"])
        assert http.get(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    # Authentication comes before parameter checks.
    assert http.get("/api/v3.0/invoices?limit=0").status_code == 401


# --- database commands and plans ---------------------------------------------------------------

@pytest.fixture
def counted(app, mongo_uri, settings, authorizer):
    counter = CommandCounter()
    mongo = MongoClient(mongo_uri, tz_aware=True, event_listeners=[counter])
    service = InvoiceService(InvoiceRepository(mongo[settings.invoices_db]),
                             PlatformRepository(mongo[settings.platform_db]), authorizer)
    yield service, counter
    mongo.close()


def test_one_find_per_list_request_first_or_deep(counted, dataset):
    service, counter = counted
    client, _ = dataset
    for filters in (ListFilters(limit=2), ListFilters(limit=200), ListFilters(state="ticket_unmatched", limit=1),
                    ListFilters(number="N-1", issued_after=T0 - dt.timedelta(days=400), limit=2)):
        first = service.list_invoices(client, filters)
        counter.reset()
        deep = service.list_invoices(client, dataclass_replace(filters, cursor=first[-1]["_id"]))
        assert counter.by_name() == {"find": 1}, counter.commands
        assert all(doc["_id"] > first[-1]["_id"] for doc in deep)


def dataclass_replace(filters, **changes):
    import dataclasses

    return dataclasses.replace(filters, **changes)


def test_constant_commands_per_batch_whatever_its_size(counted, authorizer, platform, make_invoice, make_siret):
    service, counter = counted
    client = ObjectId()
    platform.contractor(client, make_siret("732829320"))
    platform.ticket(client, "T-1")
    connection = authorizer.add(client)

    def batch(size, prefix):
        return [make_invoice(f"{prefix}-{i}", supplier_siret=make_siret("732829320", i % 50 + 1),
                             order_reference=f"T-{i % 7}") for i in range(size)]

    counts = {}
    for size in (1, 300):
        invoices = batch(size, f"n{size}")
        counter.reset()
        service.ingest(connection, 1, invoices, [])
        counts[("new", size)] = dict(counter.by_name())
        counter.reset()
        service.ingest(connection, 1, invoices, [])
        counts[("replay", size)] = dict(counter.by_name())
        for invoice in invoices:
            invoice["number"] = "changed"
        counter.reset()
        service.ingest(connection, 1, invoices, [{"invoice_platform_id": invoices[0]["invoice_platform_id"],
                                                  "at": T0}])
        counts[("changed", size)] = dict(counter.by_name())
    for kind in ("new", "replay", "changed"):
        assert counts[(kind, 1)] == counts[(kind, 300)], counts
    assert counts[("new", 300)] == {"find": 1, "aggregate": 1, "insert": 1}
    assert counts[("replay", 300)] == {"find": 1, "aggregate": 1}
    assert counts[("changed", 300)] == {"find": 1, "aggregate": 1, "update": 1}
    # The worst batch: new and changed invoices, with suppliers and references to match.
    mixed = batch(300, "m")
    service.ingest(connection, 1, mixed[:150], [])
    for invoice in mixed[:150]:
        invoice["number"] = "changed"
    counter.reset()
    service.ingest(connection, 1, mixed, [])
    assert counter.by_name() == {"find": 1, "aggregate": 1, "insert": 1, "update": 1}


def plan_of(db, query, sort=True):
    command = {"find": "invoices", "filter": query, "limit": 50}
    if list_hint(query):
        command["hint"] = list_hint(query)
    if sort:
        command["sort"] = {"_id": 1}
    explain = db.command("explain", command, verbosity="executionStats")
    return json.dumps(explain["queryPlanner"]["winningPlan"], default=str), explain["executionStats"]


@pytest.mark.parametrize(("filters", "index"), [
    (ListFilters(), "client_id"),
    (ListFilters(cursor=ObjectId()), "client_id"),
    (ListFilters(state="ticket_unmatched"), "client_state_id"),
    (ListFilters(invoice_platform_id="A"), "client_platform_id_provider"),
    (ListFilters(number="N-1"), "client_number_id"),
    (ListFilters(supplier_siret="73282932000017"), "client_supplier_siret_id"),
    (ListFilters(issued_after=T0), "client_issue_date"),
    (ListFilters(updated_after=T0), "client_updated_at"),
    (ListFilters(created_after=T0), "client_id"),
    (ListFilters(created_before=T0, provider="yooz", cursor=ObjectId()), "client_id"),
    (ListFilters(issued_after=T0, cursor=ObjectId()), "client_issue_date"),
    (ListFilters(state="linked", updated_before=T0, cursor=ObjectId()), "client_updated_at"),
    (ListFilters(number="N-1", state="linked", cursor=ObjectId()), "client_number_id"),
])
def test_each_filter_uses_its_index(invoices_db, dataset, filters, index):
    client, _ = dataset
    plan, stats = plan_of(invoices_db, list_query(client, filters))
    assert index in plan, plan
    assert "COLLSCAN" not in plan
    assert stats["totalDocsExamined"] <= 6
