"""The three HTTP components under gunicorn, as an outsider meets them, for the system-wide
hardening tests: every route of every component, over real HTTP.

`Component` knows, for each route of its OpenAPI document, which credentials its audience
carries, so a test can send hostile input past authentication as well as before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
import uuid
from pathlib import Path

import pytest
import requests
from bobdesk_devtools import stack as launch
from bobdesk_devtools.testing import TEST_ENV, public_token, service_token, user_token
from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE
from bobdesk_shared.canonical import EXAMPLE
from bson import ObjectId

COMPONENTS = {"connections": "connections-service", "invoices": "invoices-service", "webhooks": "webhook-receiver"}
WEBHOOK_SECRET = "whsec_e2e_hardening_0123456789"


@dataclasses.dataclass
class Component:
    name: str
    url: str
    company: ObjectId
    spec: dict = dataclasses.field(default_factory=dict)

    def operations(self) -> list[tuple[str, str, dict]]:
        """(method, path template, operation) for every route of the OpenAPI document."""
        return [(method.upper(), path, operation) for path, item in self.spec["paths"].items()
                for method, operation in item.items() if method in ("get", "post", "patch", "put", "delete")]

    def credentials(self, path: str) -> dict[str, str]:
        """The Authorization header the route's audience sends (none for webhooks: they are signed)."""
        if path.startswith("/api/"):
            token = public_token(self.company)
        elif path.startswith("/internal/"):
            token = service_token(INVOICES_SERVICE if path.endswith("/authorize-ingest") else INGEST_WORKER)
        elif path.startswith("/webhooks/"):
            return {}
        else:
            token = user_token(self.company)
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def takes_cookie(path: str) -> bool:
        """jarvis routes: the user token may come as the `session` cookie."""
        return path.startswith(("/invoice-connections", "/invoices"))


def api_document(url: str) -> dict:
    """The component's clients' document with its internal one's routes: every route it serves."""
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    internal = requests.get(f"{url}/internal/openapi.json", timeout=10)
    if internal.status_code == 200:
        spec["paths"] = {**spec["paths"], **internal.json()["paths"]}
        for kind, components in internal.json().get("components", {}).items():
            spec.setdefault("components", {}).setdefault(kind, {}).update(components)
    return spec


def sign_webhook(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Yooz-Signature": f"t={timestamp},v1={signature}"}


class Stack:
    """The three HTTP components (started by bobdesk_devtools.stack), their URLs by short name."""

    def __init__(self, launcher: launch.Stack):
        self.launcher = launcher
        self.urls = {short: launcher.url(name) for short, name in COMPONENTS.items()}

    def stop(self) -> None:
        self.launcher.stop()


def start_stack(env: dict, logs: Path) -> Stack:
    """The components on free ports, once each answers /readyz; no poller, and no provider: each
    simulator's base URL is a closed port, so none is started (no route under test calls one)."""
    closed = {s.base_url_variable: f"http://127.0.0.1:{launch.free_port()}" for s in launch.SIMULATORS}
    env = {**env, **closed, "WEBHOOK_PROCESSOR_IN_RECEIVER": "0"}
    return Stack(launch.Stack(env, logs, free_ports=True, threads=4).start(poller=False))


@pytest.fixture(scope="session")
def stack(mongo_uri, mongo_client, tmp_path_factory):
    """The components on the session's database, with one company that owns one active connection
    (holding a webhook secret) and one invoice, so routes are reached past their 404s too."""
    suffix = uuid.uuid4().hex[:8]
    dbs = {"CONNECTIONS_DB": f"e2e_hard_conn_{suffix}", "INVOICES_DB": f"e2e_hard_inv_{suffix}",
           "INGEST_DB": f"e2e_hard_ing_{suffix}", "PLATFORM_DB": f"e2e_hard_plat_{suffix}"}
    # A budget the fuzzer cannot spend: its answers are what is under test, not the limit's.
    env = {**TEST_ENV, **dbs, "MONGO_URI": mongo_uri, "PUBLIC_API_RATE_LIMIT": "100000/minute"}
    stack = start_stack(env, tmp_path_factory.mktemp("hardening-stack"))
    try:
        yield stack
    finally:
        stack.stop()
        for name in dbs.values():
            mongo_client.drop_database(name)


@pytest.fixture(scope="session")
def seeded(stack):
    """company, connection id, invoice id: real resources of one company."""
    company = ObjectId()
    user = {"Authorization": f"Bearer {user_token(company)}"}
    created = requests.post(f"{stack.urls['connections']}/invoice-connections", headers=user, timeout=10,
                            json={"provider": "yooz", "apiKey": "yz_e2e_key", "webhookSecret": WEBHOOK_SECRET})
    assert created.status_code == 201, created.text
    connection = created.json()["id"]
    invoice = {**EXAMPLE, "invoice_platform_id": "E2E-1"}
    batch = requests.post(f"{stack.urls['invoices']}/internal/invoices/batch", timeout=10,
                          headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"},
                          json={"connection": connection, "fence": None, "invoices": [invoice]})
    assert batch.status_code == 200, batch.text
    return company, connection, batch.json()["results"][0]["id"]


@pytest.fixture(scope="session")
def components(stack, seeded) -> dict[str, Component]:
    company = seeded[0]
    found = {}
    for name, url in stack.urls.items():
        found[name] = Component(name, url, company, api_document(url))
    return found
