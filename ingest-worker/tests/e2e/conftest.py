"""One real stack per test module: the Yooz and Pennylane simulators, connections-service, invoices-service and the
webhook receiver under gunicorn, and the poller, on the session's embedded MongoDB.

Tests share the stack but not their data: each uses its own company (token
`client`), simulator account and connection, and deletes its connection when done.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from bobdesk_devtools.testing import (
    TEST_ENV,
    Process,
    free_port,
    gunicorn_args,
    public_token,
    user_token,
    wait_http,
    wait_until,
)
from bson import ObjectId

POLL_INTERVAL_SECONDS = 2


class Stack:
    def __init__(self, env: dict, logs: Path):
        self.env = env
        self.logs = logs
        self.processes: list[Process] = []
        self.sim_url = env["YOOZ_BASE_URL"]
        self.connections_url = env["CONNECTIONS_URL"]
        self.invoices_url = env["INVOICES_URL"]
        self.webhooks_url = f"http://127.0.0.1:{env['WEBHOOKS_PORT']}"
        self.poller: Process | None = None
        self._companies: list[tuple[str, str]] = []

    # --- processes -----------------------------------------------------------------

    def start(self, name: str, args: list[str], extra: dict | None = None) -> Process:
        env = {**self.env, **(extra or {})}
        process = Process(args, env, self.logs / f"{name}-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def start_gunicorn(self, name: str, app: str, port: int, workers: int = 2) -> None:
        args, extra = gunicorn_args(app, port, workers=workers, threads=8)
        self.start(name, args, extra)

    def start_poller(self, **extra) -> Process:
        port = free_port()
        process = self.start("poller", [sys.executable, "-m", "ingest_worker.poller"],
                             {"WORKER_METRICS_PORT": str(port), **extra})
        process.metrics_url = f"http://127.0.0.1:{port}"
        wait_http(f"{process.metrics_url}/healthz", 30)
        return process

    def restart_poller(self) -> None:
        self.poller = self.start_poller()

    def kill_poller(self) -> None:
        self.poller.signal(signal.SIGKILL)
        self.poller.popen.wait(5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    # --- companies and tokens -----------------------------------------------------------

    def company(self) -> str:
        return str(ObjectId())

    @staticmethod
    def user(company: str) -> dict:
        return {"Authorization": f"Bearer {user_token(company)}"}

    @staticmethod
    def public(company: str) -> dict:
        return {"Authorization": f"Bearer {public_token(company)}"}

    # --- connections-service (public API) ------------------------------------------------

    def create_connection(self, company: str, api_key: str, webhook_secret: str | None = None) -> dict:
        body = {"provider": "yooz", "apiKey": api_key}
        if webhook_secret:
            body["webhookSecret"] = webhook_secret
        response = requests.post(f"{self.connections_url}/invoice-connections", json=body,
                                 headers=self.user(company), timeout=10)
        assert response.status_code == 201, response.text
        self._companies.append((company, response.json()["id"]))
        return response.json()

    def connection(self, company: str, connection_id: str) -> dict:
        response = requests.get(f"{self.connections_url}/invoice-connections", headers=self.user(company), timeout=10)
        response.raise_for_status()
        return next(c for c in response.json() if c["id"] == connection_id)

    def patch_connection(self, company: str, connection_id: str, **body) -> dict:
        response = requests.patch(f"{self.connections_url}/invoice-connections/{connection_id}", json=body,
                                  headers=self.user(company), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def delete_connection(self, company: str, connection_id: str) -> None:
        response = requests.delete(f"{self.connections_url}/invoice-connections/{connection_id}",
                                   headers=self.user(company), timeout=10)
        assert response.status_code in (204, 404), response.text

    def wait_polled(self, company: str, connection_id: str, after: str | None = None, timeout: float = 30) -> str:
        """lastPolledAt once it is set (and later than `after`)."""
        def polled():
            try:
                value = self.connection(company, connection_id)["lastPolledAt"]
            except requests.Timeout:
                # The embedded server pauses now and then under heavy writes (seconds, not
                # minutes); what is waited for is the outcome, not one request's latency.
                return None
            return value if value and (after is None or value > after) else None

        return wait_until(polled, timeout, 0.2, "lastPolledAt")

    # --- invoices-service (public API) -----------------------------------------------------

    def invoices(self, company: str, **params) -> list[dict]:
        """Every invoice of `company` (all pages), amounts as Decimals."""
        found, cursor = [], None
        while True:
            query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
            response = requests.get(f"{self.invoices_url}/api/v3.0/invoices", params=query,
                                    headers=self.public(company), timeout=30)
            assert response.status_code == 200, response.text
            page = response.json(parse_float=Decimal)
            found += page["invoices"]
            cursor = page["cursor"]
            if not page["invoices"] or not cursor:
                return found

    # --- the simulator ----------------------------------------------------------------

    def account(self, **body) -> dict:
        response = requests.post(f"{self.sim_url}/_admin/accounts", json=body, timeout=60)
        assert response.status_code == 201, response.text
        account = response.json()
        account["webhook_secret"] = account["webhook_secrets"][0]
        return account

    def sim(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.sim_url}/_admin/accounts/{path}", timeout=30, **kwargs)

    def faults(self, account: dict, **faults) -> None:
        self.sim("PUT", f"{account['id']}/faults", json=faults).raise_for_status()

    def sim_stats(self, account: dict) -> dict:
        return self.sim("GET", f"{account['id']}/stats").json()

    def sim_invoices(self, account: dict) -> list[dict]:
        return self.sim("GET", f"{account['id']}/invoices").json()["invoices"]

    def send_webhook(self, account: dict, connection_id: str, **body) -> dict:
        url = f"{self.webhooks_url}/webhooks/yooz/{connection_id}"
        response = self.sim("POST", f"{account['id']}/webhooks", json={"url": url, **body})
        response.raise_for_status()
        return response.json()

    def cleanup(self) -> None:
        for company, connection_id in self._companies:
            with contextlib.suppress(requests.RequestException, AssertionError):
                self.delete_connection(company, connection_id)
        self._companies.clear()


@pytest.fixture(scope="module")
def stack(mongo_uri, mongo_client, tmp_path_factory):
    for service in ("connections_service.app", "invoices_service.app"):
        pytest.importorskip(service, reason="the stack needs both services")
    suffix = uuid.uuid4().hex[:8]
    dbs = {"CONNECTIONS_DB": f"e2e_conn_{suffix}", "INVOICES_DB": f"e2e_inv_{suffix}",
           "INGEST_DB": f"e2e_ing_{suffix}", "PLATFORM_DB": f"e2e_plat_{suffix}"}
    ports = {name: free_port() for name in ("CONNECTIONS_PORT", "INVOICES_PORT", "WEBHOOKS_PORT", "YOOZ_SIM_PORT",
                                            "PENNYLANE_SIM_PORT")}
    env = {
        **TEST_ENV, **dbs, **{k: str(v) for k, v in ports.items()}, "MONGO_URI": mongo_uri,
        "YOOZ_BASE_URL": f"http://127.0.0.1:{ports['YOOZ_SIM_PORT']}",
        "PENNYLANE_BASE_URL": f"http://127.0.0.1:{ports['PENNYLANE_SIM_PORT']}",
        "CONNECTIONS_URL": f"http://127.0.0.1:{ports['CONNECTIONS_PORT']}",
        "INVOICES_URL": f"http://127.0.0.1:{ports['INVOICES_PORT']}",
        "POLL_INTERVAL_SECONDS": str(POLL_INTERVAL_SECONDS), "WORKER_LEASE_SECONDS": "10",
        "WORKER_IDLE_CLAIM_MS": "200", "WORKER_CONCURRENCY": "4", "PROVIDER_BACKOFF_BASE_MS": "50",
        "PROVIDER_BACKOFF_CAP_MS": "400", "PROVIDER_MAX_ATTEMPTS": "6", "PROVIDER_READ_TIMEOUT_MS": "5000",
    }
    stack = Stack(env, tmp_path_factory.mktemp("stack"))
    try:
        stack.start("yooz-sim", [sys.executable, "-m", "bobdesk_simulators.yooz"])
        stack.start("pennylane-sim", [sys.executable, "-m", "bobdesk_simulators.pennylane"])
        stack.start_gunicorn("connections", "connections_service.app:create_app()", ports["CONNECTIONS_PORT"])
        stack.start_gunicorn("invoices", "invoices_service.app:create_app()", ports["INVOICES_PORT"])
        stack.start_gunicorn("webhooks", "ingest_worker.webhooks.app:create_app()", ports["WEBHOOKS_PORT"])
        wait_http(f"{stack.sim_url}/healthz", 30)
        wait_http(f"{env['PENNYLANE_BASE_URL']}/healthz", 30)
        for url in (stack.connections_url, stack.invoices_url, stack.webhooks_url):
            wait_until(lambda u=url: _ready(u), 60, 0.2, f"{url}/readyz")
        stack.restart_poller()
        yield stack
    finally:
        stack.stop()
        for name in dbs.values():
            mongo_client.drop_database(name)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def cleanup(stack):
    """Delete the test's connections afterwards, so old ones stop being polled."""
    yield
    stack.cleanup()
