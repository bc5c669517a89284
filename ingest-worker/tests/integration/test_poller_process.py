"""`python -m ingest_worker.poller` as a real process: operations port, SIGTERM and SIGKILL."""

from __future__ import annotations

import signal
import sys
import time

import pytest
import requests
from bobdesk_devtools.stack import free_port
from bobdesk_devtools.testing import wait_http, wait_until


@pytest.fixture
def poller_env(test_env, sim_server, stub_services):
    return {**test_env, "YOOZ_BASE_URL": sim_server.url, "CONNECTIONS_URL": stub_services.url,
            "INVOICES_URL": stub_services.url, "WORKER_LEASE_SECONDS": "10", "WORKER_PAGE_SIZE": "20",
            "WORKER_IDLE_CLAIM_MS": "100", "PROVIDER_BACKOFF_BASE_MS": "10",
            "PROMETHEUS_MULTIPROC_DIR": "/nonexistent-must-be-ignored"}


def start_poller(start_process, env):
    port = free_port()
    proc = start_process([sys.executable, "-m", "ingest_worker.poller"], {**env, "WORKER_METRICS_PORT": str(port)},
                         name="poller")
    wait_http(f"http://127.0.0.1:{port}/healthz", 30)
    return proc, f"http://127.0.0.1:{port}"


def account(sim_server, **body):
    return requests.post(f"{sim_server.url}/_admin/accounts", json=body, timeout=10).json()


def test_operations_endpoints(start_process, poller_env, sim_server, stub_services):
    proc, url = start_poller(start_process, poller_env)
    assert requests.get(f"{url}/readyz", timeout=5).json()["checks"] == {
        "ingest_db": True, "connections_service": True, "invoices_service": True}
    sim_account = account(sim_server, invoices=5)
    connection = stub_services.add(sim_account["api_key"])
    wait_until(lambda: connection.successes, 20)
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert 'ingest_pages_fetched_total{provider="yooz"}' in metrics
    assert 'ingest_invoices_total{outcome="created",provider="yooz",source="poll"} 5.0' in metrics
    assert "ingest_poll_duration_seconds_bucket" in metrics
    assert sim_account["api_key"] not in proc.output()


def test_readyz_is_503_when_a_service_is_unreachable(start_process, poller_env):
    _, url = start_poller(start_process, {**poller_env, "INVOICES_URL": f"http://127.0.0.1:{free_port()}"})
    response = requests.get(f"{url}/readyz", timeout=10)
    assert response.status_code == 503 and response.json()["error"]["details"]["invoices_service"] is False


def test_sigterm_finishes_the_batch_and_releases_the_lease(start_process, poller_env, sim_server, stub_services):
    sim_account = account(sim_server, invoices=300)
    requests.put(f"{sim_server.url}/_admin/accounts/{sim_account['id']}/faults", timeout=5,
                 json={"slow_rate": 1, "slow_seconds": 0.2})
    connection = stub_services.add(sim_account["api_key"])
    proc, _ = start_poller(start_process, {**poller_env, "WORKER_BATCH_SIZE": "60"})  # three pages a batch
    wait_until(lambda: len(stub_services.stored(connection)) >= 40, 20)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.popen.wait(10) == 0
    assert time.monotonic() - started < 5
    calls = stub_services.calls_for(connection.id)
    assert calls[-2:] == ["heartbeat+checkpoint", "release"]
    assert connection.lease_until == 0
    assert "lease released" in proc.output()


def test_sigkill_at_any_moment_loses_and_duplicates_nothing(start_process, poller_env, sim_server, stub_services):
    sim_account = account(sim_server, invoices=400)
    requests.put(f"{sim_server.url}/_admin/accounts/{sim_account['id']}/faults", timeout=5,
                 json={"slow_rate": 1, "slow_seconds": 0.05})
    connection = stub_services.add(sim_account["api_key"])
    for threshold in (60, 160, 260):
        proc, _ = start_poller(start_process, poller_env)
        wait_until(lambda t=threshold: len(stub_services.stored(connection)) >= t, 30)
        proc.kill()
        with stub_services.lock:
            connection.lease_until = 0  # as if the lease ran out
    start_poller(start_process, poller_env)
    wait_until(lambda: connection.successes, 30)
    stored = stub_services.stored(connection)
    assert len(stored) == 400 and all(s["writes"] == 1 for s in stored.values())
