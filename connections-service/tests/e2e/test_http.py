"""End to end over real HTTP: connections-service under gunicorn (2 workers x 4 threads) on the
embedded database; the one-active-connection rule under concurrency, exclusive claims, no secret
in responses, logs or metrics."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
import requests
from bobdesk_devtools.stack import free_port, gunicorn_args
from bobdesk_devtools.testing import service_token, user_token, wait_http
from bson import ObjectId

from ..conftest import API_KEY, WEBHOOK_SECRET

pytestmark = pytest.mark.e2e

CONCURRENCY = 16


@pytest.fixture
def server(start_process, test_env):
    port = free_port()
    args, extra = gunicorn_args("connections_service.app:create_app()", port)
    process = start_process(args, {**test_env, **extra, "LOG_LEVEL": "DEBUG"}, "connections")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz")
    process.url = url
    return process


def all_at_once(calls):
    """Run every call at the same instant (threads released by one barrier); their responses."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def headers(company):
    return {"Authorization": f"Bearer {user_token(company)}"}


def test_sixteen_simultaneous_creates_give_one_201_and_fifteen_409(server):
    company = ObjectId()
    body = {"provider": "yooz", "apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET}
    responses = all_at_once([lambda: requests.post(f"{server.url}/invoice-connections", json=body,
                                                   headers=headers(company), timeout=30)] * CONCURRENCY)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (CONCURRENCY - 1)
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"active_connection_exists"}
    listed = requests.get(f"{server.url}/invoice-connections", headers=headers(company), timeout=10).json()
    assert len(listed) == 1 and listed[0]["active"] is True


def test_sixteen_simultaneous_activations_give_one_200_and_fifteen_409(server):
    company = ObjectId()
    ids = [requests.post(f"{server.url}/invoice-connections", json={"provider": "yooz", "apiKey": API_KEY,
                                                                     "active": False},
                         headers=headers(company), timeout=10).json()["id"] for _ in range(CONCURRENCY)]
    responses = all_at_once([
        lambda cid=cid: requests.patch(f"{server.url}/invoice-connections/{cid}", json={"active": True},
                                       headers=headers(company), timeout=30) for cid in ids])
    assert sorted(r.status_code for r in responses) == [200] + [409] * (CONCURRENCY - 1)
    listed = requests.get(f"{server.url}/invoice-connections", headers=headers(company), timeout=10).json()
    assert sum(c["active"] for c in listed) == 1


def test_simultaneous_claims_never_hand_one_connection_to_two_workers(server):
    companies = [ObjectId() for _ in range(3)]
    for company in companies:
        requests.post(f"{server.url}/invoice-connections", json={"provider": "yooz", "apiKey": API_KEY},
                      headers=headers(company), timeout=10).raise_for_status()
    service = {"Authorization": f"Bearer {service_token('ingest-worker')}"}
    responses = all_at_once([
        lambda n=n: requests.post(f"{server.url}/internal/connections/claim", json={"worker": f"w{n}",
                                                                                     "lease_seconds": 60},
                                  headers=service, timeout=30) for n in range(CONCURRENCY)])
    claimed = [r.json()["connection"]["client"] for r in responses if r.status_code == 200]
    assert sorted(claimed) == sorted(str(c) for c in companies)  # each exactly once
    assert sum(r.status_code == 204 for r in responses) == CONCURRENCY - len(companies)


def test_no_secret_leaves_in_responses_logs_or_metrics(server):
    company = ObjectId()
    created = requests.post(f"{server.url}/invoice-connections", headers=headers(company), timeout=10,
                            json={"provider": "yooz", "apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET})
    cid = created.json()["id"]
    answers = [created,
               requests.get(f"{server.url}/invoice-connections", headers=headers(company), timeout=10),
               requests.patch(f"{server.url}/invoice-connections/{cid}", json={"apiKey": API_KEY + "2"},
                              headers=headers(company), timeout=10),
               requests.post(f"{server.url}/invoice-connections", headers=headers(company), timeout=10,
                             json={"provider": "yooz", "apiKey": API_KEY}),  # 409
               requests.post(f"{server.url}/invoice-connections", headers=headers(company), timeout=10,
                             json={"provider": "nope", "apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET}),
               requests.get(f"{server.url}/invoice-connections/{cid}/sync", headers=headers(company), timeout=10),
               requests.get(f"{server.url}/metrics", timeout=10),
               requests.get(f"{server.url}/openapi.json", timeout=10)]
    assert [a.status_code for a in answers] == [201, 200, 200, 409, 400, 200, 200, 200]
    assert "connection_claims_total" in answers[6].text or "http_requests_total" in answers[6].text
    server.stop()
    text = "\n".join(a.text for a in answers) + server.output()
    assert '"msg":"connection created"' in server.output()  # the log is there, and it is JSON
    for secret in (API_KEY, API_KEY + "2", WEBHOOK_SECRET):
        assert secret not in text


def test_ready_and_healthy(server):
    assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
