"""The public API's per-company budget (PUBLIC_API_RATE_LIMIT), counted in the real database."""

from __future__ import annotations

import pytest
from bobdesk_devtools.testing import public_token, user_token
from bson import ObjectId
from invoices_service.app import create_app
from invoices_service.config import load_settings

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


def test_the_budget_costs_one_round_trip_per_request(test_env, authorizer):
    """The count, and nothing more: the headers come from the count's own answer."""
    from prometheus_client import REGISTRY

    def commands():
        return sum(sample.value for metric in REGISTRY.collect() if metric.name == "mongo_commands"
                   for sample in metric.samples if sample.name == "mongo_commands_total")

    http = _app(test_env, authorizer, "50/minute").test_client()
    company = ObjectId()
    _get(http, company)  # the first request also creates the storage's indexes
    for remaining in ("48", "47"):
        before = commands()
        answer = _get(http, company)
        assert answer.headers["RateLimit-Remaining"] == remaining
        assert commands() - before == 2  # the page's find and the budget's count


def test_a_window_opened_by_many_requests_at_once_counts_them_all(test_env, authorizer):
    """Concurrent first requests of a window race to create its counter: none fails, each is counted."""
    import threading

    app = _app(test_env, authorizer, "1000/minute")
    _get(app.test_client(), ObjectId())  # the storage's indexes, created once
    for _round in range(5):
        company, start = ObjectId(), threading.Barrier(16)
        statuses: list[int] = []

        def first_request(company=company, start=start, statuses=statuses):
            http = app.test_client()
            start.wait()
            statuses.append(_get(http, company).status_code)

        threads = [threading.Thread(target=first_request) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 16
        assert _get(app.test_client(), company).headers["RateLimit-Remaining"] == str(1000 - 17)
