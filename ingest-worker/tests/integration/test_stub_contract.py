"""The worker's stub of connections-service and invoices-service answers as the real services do.

The poller's tests run against `StubServices` (conftest.py); this conversation (the
internal API of docs/internal-api.md, as the worker holds it: claims, heartbeats,
batches, results, webhook credentials, and each refusal) is held with the stub and with
the real services on the real database, and both must give the same statuses, error
codes, body shapes and batch outcomes. A change of the real contract breaks this test, not production.
"""

from __future__ import annotations

import copy

import pytest
import requests
from bobdesk_devtools.testing import answer_shape, service_token, serving, user_token
from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE
from bobdesk_shared.canonical import EXAMPLE
from bson import ObjectId
from connections_service import config as connections_config
from connections_service.app import create_app as connections_app
from invoices_service import config as invoices_config
from invoices_service.app import create_app as invoices_app

API_KEY = "yz_live_sk_0123456789abcdefCONTRACT"
WEBHOOK_SECRET = "whsec_0123456789abcdefCONTRACT"
INVOICE = copy.deepcopy(EXAMPLE)
CHECKPOINT = {"updated_since": "2024-03-12T08:00:00.000000Z", "cursor": None}


class RealServices:
    def __init__(self, connections_url: str, invoices_url: str):
        self.connections_url, self.invoices_url = connections_url, invoices_url

    def add(self, client: str, webhook_secret: str | None = WEBHOOK_SECRET) -> str:
        body = {"provider": "yooz", "apiKey": API_KEY, **({"webhookSecret": webhook_secret} if webhook_secret else {})}
        response = requests.post(f"{self.connections_url}/invoice-connections", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {user_token(client)}"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def deactivate(self, client: str, connection_id: str) -> None:
        response = requests.patch(f"{self.connections_url}/invoice-connections/{connection_id}", timeout=10,
                                  json={"active": False}, headers={"Authorization": f"Bearer {user_token(client)}"})
        assert response.status_code == 200, response.text


class Stubbed:
    def __init__(self, stub):
        self.stub = stub
        self.connections_url = self.invoices_url = stub.url

    def add(self, client: str, webhook_secret: str | None = WEBHOOK_SECRET) -> str:
        return self.stub.add(API_KEY, webhook_secret=webhook_secret, client=client).id

    def deactivate(self, _client: str, connection_id: str) -> None:
        with self.stub.lock:
            self.stub.connections[connection_id].active = False


@pytest.fixture
def real_services(test_env):
    with serving(connections_app(connections_config.load_settings(test_env))) as connections_url:
        settings = invoices_config.load_settings({**test_env, "CONNECTIONS_URL": connections_url})
        with serving(invoices_app(settings)) as invoices_url:
            yield RealServices(connections_url, invoices_url)


def converse(target) -> list[tuple]:
    """Every step's (name, status, shape), as the worker would hold it with `target`."""
    answers = []

    def call(step: str, method: str, url: str, body: dict | None = None, caller: str | None = INGEST_WORKER):
        headers = {"Authorization": f"Bearer {service_token(caller)}"} if caller else {}
        response = requests.request(method, url, json=body, headers=headers, timeout=10)
        answers.append((step, *answer_shape(response)))
        if "/batch" in url and response.status_code == 200:  # and what the batch did
            answers.append((step, [result["outcome"] for result in response.json()["results"]]))
        return response

    client = str(ObjectId())
    connection = target.add(client)
    c, i = f"{target.connections_url}/internal/connections", f"{target.invoices_url}/internal/invoices"
    lease = {"worker": "worker-1", "lease_seconds": 30}
    call("claim, another component's token", "POST", f"{c}/claim", lease, caller=INVOICES_SERVICE)
    call("claim, no token", "POST", f"{c}/claim", lease, caller=None)
    claimed = call("claim", "POST", f"{c}/claim", lease)
    assert claimed.status_code == 200, answers
    fence = claimed.json()["connection"]["fence"]
    call("claim, nothing due", "POST", f"{c}/claim", lease)
    call("heartbeat", "POST", f"{c}/{connection}/heartbeat", {"fence": fence, "lease_seconds": 30})
    batch = {"connection": connection, "fence": fence, "invoices": [INVOICE], "cancellations": []}
    call("batch", "POST", f"{i}/batch", batch)
    call("the same batch again", "POST", f"{i}/batch", batch)
    call("cancellations", "POST", f"{i}/batch", {**batch, "invoices": [], "cancellations": [
        {"invoice_platform_id": INVOICE["invoice_platform_id"], "at": "2024-03-13T08:00:00.000Z"},
        {"invoice_platform_id": "YZ-UNKNOWN", "at": "2024-03-13T08:00:00.000Z"}]})
    call("batch, stale fence", "POST", f"{i}/batch", {**batch, "fence": fence + 1})
    call("heartbeat, stale fence", "POST", f"{c}/{connection}/heartbeat", {"fence": fence + 1, "lease_seconds": 30})
    call("heartbeat with a checkpoint", "POST", f"{c}/{connection}/heartbeat",
         {"fence": fence, "lease_seconds": 30, "checkpoint": CHECKPOINT})
    call("poll result", "POST", f"{c}/{connection}/poll-result", {
        "fence": fence, "outcome": "success", "checkpoint": CHECKPOINT, "duration_ms": 12,
        "stats": {"pages": 1, "created": 1, "updated": 0, "unchanged": 1, "rejected": 0}})
    call("heartbeat after the result", "POST", f"{c}/{connection}/heartbeat", {"fence": fence, "lease_seconds": 30})
    call("release after the result", "POST", f"{c}/{connection}/release", {"fence": fence})
    call("unknown connection", "POST", f"{c}/{ObjectId()}/heartbeat", {"fence": 1, "lease_seconds": 30})
    call("webhook credentials", "GET", f"{c}/{connection}/webhook-credentials")
    call("webhook result", "POST", f"{c}/{connection}/webhook-result",
         {"created": 1, "updated": 0, "unchanged": 0, "rejected": 0})
    call("webhook batch", "POST", f"{i}/batch", {**batch, "fence": None})
    call("reconcile", "POST", f"{i}/reconcile", {"client": client})
    target.deactivate(client, connection)
    call("webhook credentials, inactive", "GET", f"{c}/{connection}/webhook-credentials")
    call("webhook batch, inactive", "POST", f"{i}/batch", {**batch, "fence": None})
    secretless = target.add(str(ObjectId()), webhook_secret=None)
    call("webhook credentials, no secret", "GET", f"{c}/{secretless}/webhook-credentials")
    return answers


def test_the_stub_answers_the_worker_as_the_real_services_do(stub_services, real_services):
    assert converse(Stubbed(stub_services)) == converse(real_services)
