"""Fixtures of invoices-service tests: canonical invoices, platform data, an app on the embedded server
with a fake connections-service authorizer."""

from __future__ import annotations

import copy
import itertools

import pytest
from bobdesk_devtools.testing import public_token, service_token, user_token
from bobdesk_shared.auth import INGEST_WORKER
from bobdesk_shared.canonical import EXAMPLE
from bobdesk_shared.errors import Conflict, NotFound
from bson import ObjectId
from invoices_service.ingest_authorizer import IngestGrant

# The shared example, with a supplier known by no SIRET and no order reference (nothing matches).
CANONICAL = {**copy.deepcopy(EXAMPLE), "order_reference": None,
             "supplier": {**EXAMPLE["supplier"], "siret": None}}


def luhn_siret(prefix13: str) -> str:
    """`prefix13` completed with the digit that makes a Luhn-valid SIRET."""
    for digit in "0123456789":
        candidate = prefix13 + digit
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def siret(siren: str, establishment: int = 1) -> str:
    return luhn_siret(f"{siren}{establishment:04d}")


_numbers = itertools.count(1)


def canonical(platform_id: str | None = None, **overrides) -> dict:
    """A canonical invoice; `supplier_siret`, `supplier_name` and amounts shortcuts accepted."""
    invoice = copy.deepcopy(CANONICAL)
    platform_id = platform_id or f"YZ-{next(_numbers):06d}"
    invoice["invoice_platform_id"] = platform_id
    invoice["raw"]["id"] = platform_id
    if "supplier_siret" in overrides:
        invoice["supplier"]["siret"] = overrides.pop("supplier_siret")
    if "supplier_name" in overrides:
        invoice["supplier"]["name"] = overrides.pop("supplier_name")
    invoice.update(overrides)
    return invoice


class FakeAuthorizer:
    """connections-service's authorize-ingest: connections registered by the test."""

    def __init__(self):
        self.grants: dict[str, IngestGrant] = {}
        self.refusal: dict[str, Exception] = {}
        self.calls = 0

    def add(self, client: ObjectId, provider: str = "yooz") -> str:
        connection = ObjectId()
        self.grants[str(connection)] = IngestGrant(connection, client, provider)
        return str(connection)

    def connection_for(self, client: ObjectId, provider: str = "yooz") -> str:
        """The same connection for every batch of one company and provider."""
        for connection, grant in self.grants.items():
            if grant.client == client and grant.provider == provider:
                return connection
        return self.add(client, provider)

    def authorize(self, connection_id: str, fence):
        self.calls += 1
        if connection_id in self.refusal:
            raise self.refusal[connection_id]
        grant = self.grants.get(connection_id)
        if grant is None:
            raise NotFound("Unknown connection.")
        if fence == -1:
            raise Conflict("lease lost", code="lease_lost")
        return grant


class Platform:
    """Writes PLATFORM_DB fixtures (the service itself only reads it)."""

    def __init__(self, db):
        self.db = db

    def contractor(self, client, siret_value, *, partners=(), active=True, name="ACME") -> ObjectId:
        return self.db.contractors.insert_one({"client": client, "partners": list(partners), "name": name,
                                               "siret": siret_value, "isActive": active}).inserted_id

    def ticket(self, client, number, contractor=None) -> ObjectId:
        return self.db.tickets.insert_one({"client": client, "number": number,
                                           "contractor": contractor}).inserted_id


@pytest.fixture
def authorizer():
    return FakeAuthorizer()


@pytest.fixture
def settings(test_env):
    from invoices_service.config import load_settings

    return load_settings(test_env)


@pytest.fixture
def app(settings, authorizer):
    from invoices_service.app import create_app

    return create_app(settings, authorizer=authorizer)


@pytest.fixture
def http(app):
    return app.test_client()


@pytest.fixture
def platform(mongo_client, settings):
    return Platform(mongo_client[settings.platform_db])


@pytest.fixture
def invoices_db(mongo_client, settings):
    return mongo_client[settings.invoices_db]


class Api:
    """Calls of the app under test, with the right token for each route."""

    def __init__(self, http, authorizer):
        self.http = http
        self.authorizer = authorizer

    def batch(self, connection, invoices=(), cancellations=(), fence=1, token=None, listing=None):
        body = {"connection": connection, "fence": fence, "invoices": list(invoices),
                "cancellations": list(cancellations), **({"listing": listing} if listing else {})}
        headers = {"Authorization": f"Bearer {token or service_token(INGEST_WORKER)}"}
        return self.http.post("/internal/invoices/batch", json=body, headers=headers)

    def complete_listing(self, connection, listing, fence=1):
        return self.http.post("/internal/invoices/listing-complete", json={
            "connection": connection, "fence": fence, "listing": listing},
            headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"})

    def reconcile(self, client):
        return self.http.post("/internal/invoices/reconcile", json={"client": str(client)},
                              headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"})

    def public(self, client, path="", **params):
        return self.http.get(f"/api/v3.0/invoices{path}", query_string=params,
                             headers={"Authorization": f"Bearer {public_token(client)}"})

    def jarvis(self, method, client, path="", json=None, **params):
        return self.http.open(f"/invoices{path}", method=method, json=json, query_string=params,
                              headers={"Authorization": f"Bearer {user_token(client)}"})

    def ingest(self, client, invoices, provider="yooz", **kwargs):
        connection = self.authorizer.connection_for(client, provider)
        response = self.batch(connection, invoices, **kwargs)
        assert response.status_code == 200, response.get_json()
        return response.get_json()


@pytest.fixture
def api(http, authorizer):
    return Api(http, authorizer)


@pytest.fixture
def make_invoice():
    return canonical


@pytest.fixture
def make_siret():
    return siret
