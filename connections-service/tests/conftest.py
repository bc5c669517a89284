"""Fixtures of connections-service tests: the app on the embedded server, companies and their tokens."""

from __future__ import annotations

import pytest
from bobdesk_devtools.testing import service_token, user_token
from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE
from bson import ObjectId
from connections_service.app import create_app
from connections_service.config import load_settings

API_KEY = "yz_live_sk_0123456789abcdefSECRET"
WEBHOOK_SECRET = "whsec_fedcba9876543210SECRET"


@pytest.fixture
def settings(test_env):
    return load_settings({**test_env, "POLL_INTERVAL_SECONDS": "60"})


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def http(app):
    return app.test_client()


@pytest.fixture
def db(mongo_client, settings):
    return mongo_client[settings.connections_db]


class Company:
    """A tenant and the headers of its accounting user."""

    def __init__(self):
        self.id = ObjectId()
        self.headers = {"Authorization": f"Bearer {user_token(self.id)}"}


@pytest.fixture
def company():
    return Company()


@pytest.fixture
def other_company():
    return Company()


@pytest.fixture
def service_headers():
    return {"Authorization": f"Bearer {service_token(INGEST_WORKER)}"}


@pytest.fixture
def create(http, company):
    """POST /invoice-connections for `company` (or `as_company`); the response."""

    def create(as_company=None, **body):
        body = {"provider": "yooz", "apiKey": API_KEY, **body}
        return http.post("/invoice-connections", json=body, headers=(as_company or company).headers)

    return create


@pytest.fixture
def worker(http, service_headers):
    """The internal API, as its callers call it (authorize-ingest: invoices-service; the rest: the worker)."""
    invoices_headers = {"Authorization": f"Bearer {service_token(INVOICES_SERVICE)}"}

    class Worker:
        def post(self, path, body=None):
            headers = invoices_headers if path.endswith("/authorize-ingest") else service_headers
            return http.post(f"/internal/connections{path}", json=body or {}, headers=headers)

        def get(self, path):
            return http.get(f"/internal/connections{path}", headers=service_headers)

        def claim(self, name="worker-1", lease_seconds=60):
            return self.post("/claim", {"worker": name, "lease_seconds": lease_seconds})

    return Worker()
