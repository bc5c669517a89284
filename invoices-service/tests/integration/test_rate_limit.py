"""The public API's per-company budget (PUBLIC_API_RATE_LIMIT), counted in the real database."""

from __future__ import annotations

import time

import pytest
from bobdesk_devtools.testing import public_token, user_token
from bson import ObjectId
from invoices_service.api.rate_limit import CounterStorage
from invoices_service.app import create_app
from invoices_service.config import load_settings
from pymongo import MongoClient

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def _app(test_env, authorizer, budget):
    return create_app(load_settings({**test_env, "PUBLIC_API_RATE_LIMIT": budget}), authorizer=authorizer)


def _get(http, client, path=""):
    return http.get(f"/api/v3.0/invoices{path}", headers={"Authorization": f"Bearer {public_token(client)}"})


def test_a_company_over_its_budget_gets_429_and_others_do_not(test_env, authorizer):
    app = _app(test_env, authorizer, "3/minute")
    http = app.test_client()
    spender, other = ObjectId(), ObjectId()
    answers = [_get(http, spender, path) for path in ("", "", f"/{ObjectId()}")]
    assert [a.status_code for a in answers] == [200, 200, 404]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    for answer in answers:
        assert answer.headers["RateLimit-Limit"] == "3" and 0 <= int(answer.headers["RateLimit-Reset"]) <= 60
        assert "Retry-After" not in answer.headers
    refused = _get(http, spender)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert _get(http, other).status_code == 200


def test_the_budget_is_whole_again_when_its_window_ends(test_env, authorizer):
    http = _app(test_env, authorizer, "2/second").test_client()
    company = ObjectId()
    assert [_get(http, company).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.1)
    answer = _get(http, company)
    assert answer.status_code == 200 and answer.headers["RateLimit-Remaining"] == "1"


def test_every_replica_spends_one_budget(test_env, authorizer):
    """Two apps (two replicas) on one database: the counter is theirs to share."""
    first, second = (_app(test_env, authorizer, "2/minute").test_client() for _ in range(2))
    company = ObjectId()
    assert _get(first, company).status_code == 200
    assert _get(second, company).status_code == 200
    assert _get(first, company).status_code == 429
    assert _get(second, company).status_code == 429


def test_the_budget_is_the_public_apis_alone(test_env, authorizer):
    app = _app(test_env, authorizer, "1/minute")
    http = app.test_client()
    company = ObjectId()
    jarvis = {"Authorization": f"Bearer {user_token(company)}"}
    for _ in range(3):
        answer = http.get("/invoices", headers=jarvis)
        assert answer.status_code == 200 and not set(RATE_HEADERS) & set(answer.headers)
    unauthenticated = http.get("/api/v3.0/invoices")
    assert unauthenticated.status_code == 401 and "RateLimit-Limit" not in unauthenticated.headers


def test_the_default_budget_is_600_a_minute(app, http):
    answer = _get(http, ObjectId())
    assert answer.status_code == 200 and answer.headers["RateLimit-Limit"] == "600"


def test_a_budget_that_does_not_parse_is_refused_at_start(test_env):
    from bobdesk_shared.config import ConfigError

    with pytest.raises(ConfigError, match="PUBLIC_API_RATE_LIMIT"):
        load_settings({**test_env, "PUBLIC_API_RATE_LIMIT": "lots"})


def test_the_openapi_document_tells_the_budget(http):
    spec = http.get("/openapi.json").get_json()
    for path in ("/api/v3.0/invoices", "/api/v3.0/invoices/{invoice_id}"):
        responses = spec["paths"][path]["get"]["responses"]
        assert set(RATE_HEADERS) <= set(responses["200"]["headers"])
        assert "Retry-After" in responses["429"]["headers"]
        assert responses["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


def _counts():
    """Counts of a budget sent so far (`findAndModify` on the rate limit's client), across apps."""
    from prometheus_client import REGISTRY

    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "mongo_commands"
               for sample in metric.samples
               if sample.name == "mongo_commands_total" and sample.labels["command"] == "findAndModify")


def _counter(test_env, company) -> int:
    """The company's count in the current window, as stored (every replica's numbers so far)."""
    with MongoClient(test_env["MONGO_URI"]) as mongo:
        counters = list(mongo[test_env["INVOICES_DB"]].rate_limits.find({"_id": {"$regex": str(company)}}))
    assert len(counters) == 1
    return counters[0]["count"]


def test_a_small_budget_is_counted_once_per_request(test_env, authorizer):
    """Under 64 requests left, every request is counted alone, and its headers come from that count."""
    http = _app(test_env, authorizer, "50/minute").test_client()
    company = ObjectId()
    _get(http, company)  # the first request also creates the storage's indexes
    for remaining in ("48", "47", "46"):
        before = _counts()
        answer = _get(http, company)
        assert answer.headers["RateLimit-Remaining"] == remaining
        assert _counts() - before == 1


def test_a_large_budget_is_counted_in_blocks(test_env, authorizer):
    """With budget to spare, one count reserves up to 16 numbers of the window for the process,
    the window's first count too (nothing is spent yet as far as the process knows)."""
    http = _app(test_env, authorizer, "100000/minute").test_client()
    company = ObjectId()
    before = _counts()
    answers = [_get(http, company) for _ in range(32)]
    assert _counts() - before == 2
    assert [a.headers["RateLimit-Remaining"] for a in answers] == [str(100000 - n) for n in range(1, 33)]


def test_a_windows_first_count_reserves_at_most_a_64th_of_the_budget(test_env, authorizer):
    """The first count of a window knows nothing of what other replicas spent: it reserves 1/64 of
    the whole budget, so that little is all a process can leave unused near the budget's end."""
    http = _app(test_env, authorizer, "640/minute").test_client()
    company = ObjectId()
    _get(http, company)
    assert _counter(test_env, company) == 10
    before = _counts()
    for _ in range(9):
        _get(http, company)
    assert _counts() == before
    _get(http, company)
    assert _counts() - before == 1


def test_replicas_taking_blocks_never_exceed_the_budget(test_env, authorizer):
    """Two replicas alternating: together they serve at most the budget, and lose at most the
    unused part of their last blocks."""
    replicas = [_app(test_env, authorizer, "200/minute").test_client() for _ in range(2)]
    company = ObjectId()
    statuses = [_get(replicas[n % 2], company).status_code for n in range(220)]
    served = statuses.count(200)
    assert 200 - 2 * (200 // 64 - 1) <= served <= 200
    assert set(statuses[served + 4:]) == {429}


def test_a_window_opened_by_many_requests_at_once_counts_them_all(test_env, authorizer):
    """Concurrent first requests of a window, on four replicas of four threads, race to create its
    counter: none fails, each is counted."""
    import threading

    apps = [_app(test_env, authorizer, "1000/minute") for _ in range(4)]
    _get(apps[0].test_client(), ObjectId())  # the storage's indexes, created once
    for _round in range(3):
        company, start = ObjectId(), threading.Barrier(16)
        statuses: list[int] = []

        def first_request(app, company=company, start=start, statuses=statuses):
            http = app.test_client()
            start.wait()
            statuses.append(_get(http, company).status_code)

        threads = [threading.Thread(target=first_request, args=(apps[n % 4],)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 16
        # Every request is counted: each replica counted its first alone, then took blocks for the rest.
        counted = _counter(test_env, company)
        assert 16 <= counted <= 16 + 4 * CounterStorage.BLOCK_MAX
