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
from bobdesk_devtools.testing import (
    TEST_ENV,
    Process,
    free_port,
    gunicorn_args,
    public_token,
    service_token,
    user_token,
    wait_until,
)
from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE
from bobdesk_shared.canonical import EXAMPLE
from bson import ObjectId

APPS = {
    "connections": "connections_service.app:create_app()",
    "invoices": "invoices_service.app:create_app()",
    "webhooks": "ingest_worker.webhooks.app:create_app()",
}
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
    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.processes: list[Process] = []
        self.urls: dict[str, str] = {}

    def start(self, name: str, app: str, port: int) -> None:
        args, extra = gunicorn_args(app, port, workers=2, threads=4)
        self.processes.append(Process(args, {**self.env, **extra}, self.logs / f"{name}.log"))
        self.urls[name] = f"http://127.0.0.1:{port}"

    def wait(self, path: str = "/healthz", status: int = 200) -> None:
        for name, url in self.urls.items():
            wait_until(lambda u=url: _answers(f"{u}{path}", status), 60, 0.2, f"{name} {path}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _answers(url: str, status: int) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == status
    except requests.RequestException:
        return False


def start_stack(env: dict, logs: Path) -> Stack:
    ports = {name: free_port() for name in APPS}
    env = {**env, "CONNECTIONS_URL": f"http://127.0.0.1:{ports['connections']}",
           "INVOICES_URL": f"http://127.0.0.1:{ports['invoices']}", "WEBHOOK_PROCESSOR_IN_RECEIVER": "0",
           "YOOZ_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    stack = Stack(env, logs)
    for name, app in APPS.items():
        stack.start(name, app, ports[name])
    return stack


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
        stack.wait("/readyz")
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
