"""Fixtures shared by the worker's tests."""

from __future__ import annotations

import copy
import io
import threading

import pytest
import requests
from ingest_worker.providers.base import StaticCall

YOOZ_DOCUMENT = {
    "id": "YZ-2024-00871",
    "number": "FA-2024-00871",
    "issue_date": "2024-03-12",
    "due_date": "2024-04-12",
    "currency": "EUR",
    "total_excl_tax": "1000.00",
    "total_tax": "200.00",
    "total_incl_tax": "1200.00",
    "vat_lines": [{"rate": "20.0", "base": "1000.00", "amount": "200.00"}],
    "lines": [{"label": "Repair", "quantity": "1", "unit_price": "1000.00", "total_excl_tax": "1000.00"}],
    "supplier": {"id": "SUP-77", "name": "ACME", "siret": "12345678900011", "iban": "FR7630006000011234567890189"},
    "order_reference": "T-2024-0042",
    "status": "validated",
    "created_at": "2024-03-12T08:00:00Z",
    "updated_at": "2024-03-12T08:00:00Z",
}


@pytest.fixture
def yooz_document():
    """A valid Yooz invoice (CONTRACTS section 5); keyword overrides replace top-level fields."""

    def make(**overrides):
        document = copy.deepcopy(YOOZ_DOCUMENT)
        document.update(overrides)
        return document

    return make


class SimServer:
    """The Yooz simulator on a free port, in this process (its state reachable as `.store`)."""

    def __init__(self):
        from bobdesk_simulators.yooz.__main__ import load_sim_settings
        from bobdesk_simulators.yooz.app import build_app
        from bobdesk_simulators.yooz.state import Store
        from werkzeug.serving import make_server

        self.store = Store(seed=1)
        self.store.load_demo()
        self.server = make_server("127.0.0.1", 0, build_app(self.store, load_sim_settings({})), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sim_server():
    server = SimServer()
    yield server
    server.close()


class FakeClock:
    """Unix seconds moved only by waiting: the pacing, the simulator's rate windows and the
    adapter's waits share it, so rate-limit behaviour is exact and takes no real time."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now
        self.waited: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.now += seconds


class WsgiTransport(requests.adapters.BaseAdapter):
    """A `requests` transport that answers from a WSGI app in this process (no socket)."""

    def __init__(self, app):
        super().__init__()
        self.client = app.test_client()

    def send(self, request, **kwargs):
        answer = self.client.open(request.path_url, method=request.method, headers=dict(request.headers),
                                  data=request.body)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response.raw = io.BytesIO(answer.get_data())
        response.request, response.url = request, request.url
        return response

    def close(self):
        pass


class PennylaneHarness:
    """The Pennylane simulator in this process, on a fake clock, and adapters wired to it."""

    URL = "http://pennylane.sim"

    def __init__(self, limit: int = 25, window_seconds: int = 5):
        from bobdesk_simulators.pennylane.__main__ import load_sim_settings
        from bobdesk_simulators.pennylane.app import build_app
        from bobdesk_simulators.pennylane.state import RateLimit, Store

        self.clock = FakeClock()
        self.store = Store(seed=3, rate_limit=RateLimit(limit, window_seconds), wall=self.clock)
        self.app = build_app(self.store, load_sim_settings({}))
        self.admin = self.app.test_client()

    def account(self, invoices: int = 0, **body) -> dict:
        created = self.admin.post("/_admin/accounts", json={"invoices": invoices, **body}).get_json()
        self.clock.now += 1  # the simulator's change times run a microsecond apart ahead of a still clock
        return created

    def stats(self, account_id: str) -> dict:
        return self.admin.get(f"/_admin/accounts/{account_id}/stats").get_json()

    def adapter(self, *, max_attempts: int = 5, paced: bool = True):
        import datetime as dt

        from ingest_worker.providers.http import ProviderHttp, RetryPolicy
        from ingest_worker.providers.pacing import HeaderPacing
        from ingest_worker.providers.pennylane import PennylaneAdapter

        http = ProviderHttp("pennylane", timeout=(1, 1), pacing=HeaderPacing(clock=self.clock) if paced else None,
                            policy=RetryPolicy(max_attempts=max_attempts, backoff_base=0.01, backoff_cap=0.05,
                                               max_retry_after=30))
        http._session.mount(self.URL, WsgiTransport(self.app))
        return PennylaneAdapter(self.URL, http,
                                clock=lambda: dt.datetime.fromtimestamp(self.clock.now, dt.UTC))

    def call(self, api_key: str):
        clock = self.clock

        class FakeWaitCall(StaticCall):
            def wait(self, seconds):
                clock.sleep(seconds)

        return FakeWaitCall(api_key)


@pytest.fixture
def pennylane():
    return PennylaneHarness()
