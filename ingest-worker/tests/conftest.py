"""Fixtures shared by the worker's tests."""

from __future__ import annotations

import copy
import threading

import pytest

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
