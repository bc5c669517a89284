"""The database dies under running components (SIGKILL): every route answers 503 `unavailable`
with `Retry-After` (or the 4xx its input deserves, which needs no database), never a 500 and
never a hang; `/healthz` stays 200 and `/readyz` says 503."""

from __future__ import annotations

import pytest
import requests
from bobdesk_devtools.stack import free_port, start_embedded_mongo
from bobdesk_devtools.testing import TEST_ENV, user_token
from bson import ObjectId

from .conftest import WEBHOOK_SECRET, Component, api_document, sign_webhook, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def orphaned(tmp_path_factory):
    """The components, running, and the database they were using, killed."""
    workdir = tmp_path_factory.mktemp("doomed-mongo")
    port = free_port()
    mongo = start_embedded_mongo(port, workdir / "data", workdir / "server.log")
    # A short server selection: the answer is due within the request, not after 5 s.
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=200"
    stack = start_stack({**TEST_ENV, "MONGO_URI": uri}, workdir)
    try:
        company = ObjectId()
        created = requests.post(f"{stack.urls['connections']}/invoice-connections", timeout=10,
                                headers={"Authorization": f"Bearer {user_token(company)}"},
                                json={"provider": "yooz", "apiKey": "k", "webhookSecret": WEBHOOK_SECRET})
        assert created.status_code == 201, created.text
        mongo.kill()
        yield stack, company, created.json()["id"]
    finally:
        stack.stop()
        mongo.stop()


def _components(stack, company) -> list[Component]:
    components = []
    for name, url in stack.urls.items():
        components.append(Component(name, url, company, api_document(url)))
    return components


def test_every_route_answers_503_while_the_database_is_down(orphaned):
    stack, company, connection = orphaned
    unavailable = []
    for component in _components(stack, company):
        for method, path, _operation in component.operations():
            url = component.url + path.replace("{connection_id}", connection).replace(
                "{invoice_id}", str(ObjectId())).replace("{provider}", "yooz")
            body = b"{}"
            headers = {**component.credentials(path), "Content-Type": "application/json", **sign_webhook(body)}
            response = requests.request(method, url, data=body if method != "GET" else None, headers=headers,
                                        timeout=15)
            error = response.json()["error"]
            sent = f"{method} {path}"
            if response.status_code == 503:
                assert error["code"] == "unavailable" and int(response.headers["Retry-After"]) > 0, sent
                unavailable.append(sent)
            else:
                # Only an answer its input deserves before any database read: a 400 for the empty body.
                assert response.status_code == 400, f"{sent} -> {response.status_code} {error}"
    for expected in ("GET /invoice-connections", "POST /invoice-connections/{connection_id}/sync",
                     "GET /api/v3.0/invoices", "GET /api/v3.0/invoices/{invoice_id}", "GET /invoices",
                     "DELETE /invoice-connections/{connection_id}", "POST /webhooks/{provider}/{connection_id}",
                     "GET /internal/connections/{connection_id}/webhook-credentials"):
        assert expected in unavailable


def test_health_stays_up_and_readiness_says_503(orphaned):
    stack, _, _ = orphaned
    for url in stack.urls.values():
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and int(ready.headers["Retry-After"]) > 0
