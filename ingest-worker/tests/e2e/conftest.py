"""One real stack per test module, started by bobdesk_devtools.stack as `make run` does: the provider
simulators, connections-service, invoices-service and the webhook receiver under gunicorn, and the
poller, on the session's embedded MongoDB and free ports.

Tests share the stack but not their data: each uses its own company (token
`client`), simulator account and connection, and deletes its connection when done.
"""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal

import pytest
import requests
from bobdesk_devtools import stack as launch
from bobdesk_devtools.testing import TEST_ENV, public_token, user_token, wait_until
from bson import ObjectId

POLL_INTERVAL_SECONDS = 2


class Stack:
    """The running system (bobdesk_devtools.stack) and the calls the tests make to it."""

    def __init__(self, launcher: launch.Stack):
        self.launcher = launcher
        self.env = launcher.env
        self.sim_url = launcher.env["YOOZ_BASE_URL"]
        self.connections_url = launcher.url("connections-service")
        self.invoices_url = launcher.url("invoices-service")
        self.webhooks_url = launcher.url("webhook-receiver")
        self.poller: launch.Process | None = None
        self._companies: list[tuple[str, str]] = []

    @property
    def processes(self) -> list[launch.Process]:
        return self.launcher.processes

    # --- pollers -------------------------------------------------------------------

    def start_poller(self, **extra) -> launch.Process:
        return self.launcher.start_poller(**extra)

    def restart_poller(self) -> None:
        self.poller = self.start_poller()

    def kill_poller(self) -> None:
        self.poller.kill()

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

        try:
            return wait_until(polled, timeout, 0.2, "lastPolledAt")
        except AssertionError as timed_out:
            # Its sync status (last run, error, next poll) says why.
            raise AssertionError(f"{timed_out}; the connection: {self.connection(company, connection_id)}") from None

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
    suffix = uuid.uuid4().hex[:8]
    dbs = {"CONNECTIONS_DB": f"e2e_conn_{suffix}", "INVOICES_DB": f"e2e_inv_{suffix}",
           "INGEST_DB": f"e2e_ing_{suffix}", "PLATFORM_DB": f"e2e_plat_{suffix}"}
    env = {
        **TEST_ENV, **dbs, "MONGO_URI": mongo_uri,
        "POLL_INTERVAL_SECONDS": str(POLL_INTERVAL_SECONDS), "WORKER_LEASE_SECONDS": "10",
        "WORKER_IDLE_CLAIM_MS": "200", "WORKER_CONCURRENCY": "4", "PROVIDER_BACKOFF_BASE_MS": "50",
        "PROVIDER_BACKOFF_CAP_MS": "400", "PROVIDER_MAX_ATTEMPTS": "6", "PROVIDER_READ_TIMEOUT_MS": "5000",
    }
    launcher = launch.Stack(env, tmp_path_factory.mktemp("stack"), free_ports=True)
    try:
        launcher.start(poller=False)
        stack = Stack(launcher)
        stack.restart_poller()
        yield stack
    finally:
        launcher.stop()
        for name in dbs.values():
            mongo_client.drop_database(name)


@pytest.fixture
def cleanup(stack):
    """Delete the test's connections afterwards, so old ones stop being polled."""
    yield
    stack.cleanup()
