"""The poller against the simulator (real HTTP) and a stub of the two services (internal-api.md)."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from bobdesk_devtools.testing import TEST_ENV, wait_until
from ingest_worker.config import load_settings
from ingest_worker.poller.polling import Poll
from ingest_worker.poller.runner import ClaimLoop
from ingest_worker.providers import build_adapters
from ingest_worker.upstream import build_clients


class Worker:
    """A claim loop on a thread, as `python -m ingest_worker.poller` runs it."""

    def __init__(self, settings):
        self.stop = threading.Event()
        self.connections, self.invoices = build_clients(settings)
        self.adapters = build_adapters(settings)
        self.poll = Poll(self.connections, self.invoices, self.adapters, settings.lease_seconds, settings.page_size,
                         self.stop, settings.batch_size, settings.batches_in_flight)
        self.loop = ClaimLoop(self.connections, self.poll, worker_id=settings.worker_id,
                              lease_seconds=settings.lease_seconds, concurrency=settings.concurrency,
                              idle_seconds=settings.idle_claim_seconds, stop=self.stop)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def shutdown(self, timeout=20):
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        for adapter in self.adapters.values():
            adapter.close()


@pytest.fixture
def worker_env(sim_server, stub_services):
    return {
        **TEST_ENV, "YOOZ_BASE_URL": sim_server.url, "CONNECTIONS_URL": stub_services.url,
        "INVOICES_URL": stub_services.url, "WORKER_LEASE_SECONDS": "10", "WORKER_PAGE_SIZE": "25",
        # One page per stored batch unless a test says otherwise: the orders of calls below are per page.
        "WORKER_BATCH_SIZE": "25", "WORKER_CONCURRENCY": "3", "WORKER_IDLE_CLAIM_MS": "100",
        "PROVIDER_BACKOFF_BASE_MS": "10",
        "PROVIDER_BACKOFF_CAP_MS": "50", "PROVIDER_MAX_ATTEMPTS": "8", "PROVIDER_READ_TIMEOUT_MS": "1000",
    }


@pytest.fixture
def start_worker(worker_env):
    workers = []

    def start(**overrides):
        worker = Worker(load_settings({**worker_env, **overrides}))
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if not worker.stop.is_set():
            worker.shutdown()


class Sim:
    def __init__(self, server):
        self.url = server.url

    def account(self, **body) -> dict:
        return requests.post(f"{self.url}/_admin/accounts", json=body, timeout=10).json()

    def stats(self, account) -> dict:
        return requests.get(f"{self.url}/_admin/accounts/{account['id']}/stats", timeout=5).json()

    def faults(self, account, **faults):
        requests.put(f"{self.url}/_admin/accounts/{account['id']}/faults", json=faults, timeout=5).raise_for_status()

    def add(self, account, **body) -> dict:
        return requests.post(f"{self.url}/_admin/accounts/{account['id']}/invoices", json=body, timeout=5).json()

    def update(self, account, invoice_id, **fields) -> dict:
        return requests.patch(f"{self.url}/_admin/accounts/{account['id']}/invoices/{invoice_id}",
                              json={"fields": fields}, timeout=5).json()

    def invoices(self, account) -> list[dict]:
        return requests.get(f"{self.url}/_admin/accounts/{account['id']}/invoices", timeout=10).json()["invoices"]


@pytest.fixture
def sim(sim_server):
    return Sim(sim_server)


def polled(stub, connection, count=1):
    return lambda: connection.successes >= count


def checkpoints_follow_their_pages(sim_invoices: list[dict], connection) -> list[int]:
    """The page end (invoices up to it) of each checkpoint a heartbeat stored, checked to be stored only
    once every invoice up to it was, and in page order."""
    ends = []
    for stored, checkpoint in connection.checkpoints:
        end = max(index for index, invoice in enumerate(sim_invoices)
                  if invoice["updated_at"] == checkpoint["updated_since"]) + 1
        assert {invoice["id"] for invoice in sim_invoices[:end]} <= stored, f"checkpoint at {end} before its batch"
        ends.append(end)
    assert ends == sorted(ends)
    return ends


def test_a_poll_ingests_every_page_with_heartbeats_and_checkpoints_in_order(sim, stub_services, start_worker):
    account = sim.account(invoices=60)
    connection = stub_services.add(account["api_key"])
    start_worker()
    wait_until(polled(stub_services, connection), 20, message="first poll")
    assert len(stub_services.stored(connection)) == 60
    calls = stub_services.calls_for(connection.id)
    assert calls[0] == "claim" and calls[-1] == "poll-result:success"
    # Every batch but the last is checkpointed, in page order, once it and those before it are stored
    # (the last page's checkpoint rides on the result).
    assert calls.count("batch") == 3
    assert checkpoints_follow_their_pages(sim.invoices(account), connection) == [25, 50]
    assert calls.count("heartbeat") == sim.stats(account)["list_requests"] == 3  # one before each provider call
    assert connection.checkpoint["cursor"] is None
    assert connection.checkpoint["updated_since"] == sim.invoices(account)[-1]["updated_at"]
    assert connection.client in stub_services.reconciled


def test_one_batch_is_sent_while_another_is_stored_and_one_more_read(sim, stub_services, start_worker):
    account = sim.account(invoices=150)  # six batches of one page
    connection = stub_services.add(account["api_key"])
    connection.batch_seconds = [1.5]  # the first store is slow
    start_worker()
    wait_until(polled(stub_services, connection), 20, message="first poll")
    assert len(stub_services.stored(connection)) == 150
    assert connection.most_batches_in_flight == 2
    calls = stub_services.calls_for(connection.id)
    # While the first batch is stored: the second is stored beside it and the third read, not more:
    # the fourth page's provider call comes after the first checkpoint.
    heartbeats = [index for index, call in enumerate(calls) if call == "heartbeat"]
    assert heartbeats[3] > calls.index("heartbeat+checkpoint") > calls.index("batch", calls.index("batch") + 1)
    assert checkpoints_follow_their_pages(sim.invoices(account), connection)[0] == 25


def test_one_batch_in_flight_stores_batches_and_checkpoints_in_turn(sim, stub_services, start_worker):
    account = sim.account(invoices=60)
    connection = stub_services.add(account["api_key"])
    connection.batch_seconds = [0.5]
    start_worker(WORKER_BATCHES_IN_FLIGHT="1")
    wait_until(polled(stub_services, connection), 20, message="first poll")
    assert connection.most_batches_in_flight == 1
    calls = stub_services.calls_for(connection.id)
    assert [c for c in calls if c in ("batch", "heartbeat+checkpoint")] == [
        "batch", "heartbeat+checkpoint", "batch", "heartbeat+checkpoint", "batch"]
    # The next page is read while a batch is stored, but never two ahead: page 3's call follows
    # page 1's checkpoint.
    assert [i for i, c in enumerate(calls) if c == "heartbeat"][2] > calls.index("heartbeat+checkpoint")


def test_a_failed_store_ends_the_poll_at_once_with_the_progress_made(sim, stub_services, start_worker):
    account = sim.account(invoices=150)  # six batches of one page
    connection = stub_services.add(account["api_key"], fail_from_batch=3)  # 503 from the third, retries included
    start_worker(WORKER_CONCURRENCY="1")
    wait_until(lambda: connection.failures, 30, message="the poll's failure")
    failure = connection.failures[0]
    assert failure["error"]["kind"] == "internal"
    # What the first two batches stored is kept: the failure carries their checkpoint.
    assert checkpoints_follow_their_pages(sim.invoices(account), connection) == [25, 50]
    assert failure["checkpoint"] == connection.checkpoints[-1][1]
    # The reading stopped with the store: pages 3 and 4 were being stored, page 5 read ahead.
    assert sim.stats(account)["list_requests"] <= 5
    assert "poll-result:success" not in stub_services.calls_for(connection.id)


def test_whole_pages_are_stored_together_each_batch_checkpointed_by_its_last_page(sim, stub_services,
                                                                                   start_worker):
    account = sim.account(invoices=130)
    connection = stub_services.add(account["api_key"])
    start_worker(WORKER_BATCH_SIZE="100")
    wait_until(polled(stub_services, connection), 20, message="first poll")
    assert len(stub_services.stored(connection)) == 130
    calls = stub_services.calls_for(connection.id)
    # Pages of 25: the first alone, then four together (100 invoices), then the last (5).
    assert calls.count("batch") == 3
    assert calls.count("heartbeat") == sim.stats(account)["list_requests"] == 6  # one before each provider call
    # Each checkpoint is stored once its whole batch is, and it is the batch's last page's.
    assert checkpoints_follow_their_pages(sim.invoices(account), connection) == [25, 125]
    assert connection.checkpoints[1][1]["cursor"]


def test_a_new_poll_reads_only_what_changed_and_a_replay_changes_nothing(sim, stub_services, start_worker):
    account = sim.account(invoices=30)
    connection = stub_services.add(account["api_key"])
    start_worker()
    wait_until(polled(stub_services, connection), 20)
    changed = sim.update(account, sim.invoices(account)[3]["id"], status="paid")
    connection.next_poll_at = 0
    wait_until(polled(stub_services, connection, 2), 20)
    stored = stub_services.stored(connection)
    assert stored[changed["id"]]["invoice"]["provider_status"] == "paid"
    assert stored[changed["id"]]["writes"] == 2
    assert sum(s["writes"] for s in stored.values()) == 31  # nothing else written again
    connection.next_poll_at = 0  # a replay from the same checkpoint
    wait_until(polled(stub_services, connection, 3), 20)
    assert sum(s["writes"] for s in stub_services.stored(connection).values()) == 31


def test_invalid_invoices_are_skipped_counted_and_never_block_the_others(sim, stub_services, start_worker):
    account = sim.account(invoices=10)
    bad = sim.add(account, raw={"id": "YZ-BAD-1", "total_tax": "lots", "updated_at": "2030-01-01T00:00:00.000Z"})
    sim.add(account, fields={"supplier": {"name": None}})
    for _ in range(3):
        sim.add(account)
    connection = stub_services.add(account["api_key"])
    start_worker()
    wait_until(polled(stub_services, connection), 20)
    stored = stub_services.stored(connection)
    assert len(stored) == 13 and bad["id"] not in stored
    success = [c for c, cid in stub_services.calls if cid == connection.id and c == "poll-result:success"]
    assert success


def test_a_bad_key_is_reported_until_rotated(sim, stub_services, start_worker):
    account = sim.account(invoices=5)
    connection = stub_services.add("yz_wrong_key_000000")
    start_worker()
    wait_until(lambda: connection.failures, 20)
    assert connection.failures[0]["error"]["kind"] == "bad_credentials"
    assert "yz_wrong_key" not in connection.failures[0]["error"]["message"]
    assert connection.last_polled_at is None
    connection.api_key = account["api_key"]
    connection.next_poll_at = 0
    wait_until(polled(stub_services, connection), 20)
    assert len(stub_services.stored(connection)) == 5


def stopped_at_the_refusal(sim, stub, account, connection, code) -> None:
    """Once a lease call is refused with `code`, the poll ends without another call of its own: what
    follows is at most the calls its other threads already had on the way (the read-ahead's heartbeat
    or provider call, a store's batch). With one slot, the worker claims again only when the poll has
    ended."""
    calls = wait_until(lambda: stub.first_refusal(connection, code), 20, message=f"a {code} refusal")
    provider_calls = sim.stats(account)["list_requests"]
    attempts = stub.claim_attempts
    wait_until(lambda: stub.claim_attempts > attempts, 20, message="the end of the poll (a claim again)")
    assert len(stub.calls_for(connection.id)) - calls <= 2, stub.calls_for(connection.id)[calls - 1:]
    assert sim.stats(account)["list_requests"] - provider_calls <= 1


def test_deactivation_stops_provider_calls_at_once(sim, stub_services, start_worker):
    account = sim.account(invoices=400)
    sim.faults(account, slow_rate=1, slow_seconds=0.2)
    connection = stub_services.add(account["api_key"])
    start_worker(WORKER_CONCURRENCY="1")
    wait_until(lambda: len(stub_services.stored(connection)) >= 25, 20)
    connection.active = False
    stopped_at_the_refusal(sim, stub_services, account, connection, "connection_inactive")
    assert len(stub_services.stored(connection)) < 400
    assert "poll-result:success" not in stub_services.calls_for(connection.id)


def test_a_lost_lease_stops_the_poll(sim, stub_services, start_worker):
    account = sim.account(invoices=300)
    sim.faults(account, slow_rate=1, slow_seconds=0.2)
    connection = stub_services.add(account["api_key"])
    start_worker(WORKER_CONCURRENCY="1")
    wait_until(lambda: len(stub_services.stored(connection)) >= 25, 20)
    with stub_services.lock:
        connection.fence += 1  # another claim happened
        connection.next_poll_at = time.monotonic() + 3600
    stopped_at_the_refusal(sim, stub_services, account, connection, "lease_lost")
    assert len(stub_services.stored(connection)) < 300
    assert "poll-result:success" not in stub_services.calls_for(connection.id)


def test_a_store_slower_than_the_lease_keeps_the_lease(sim, stub_services, start_worker):
    account = sim.account(invoices=30)  # two batches: a page of 25, then 5
    connection = stub_services.add(account["api_key"])
    connection.batch_seconds = [12]  # the first batch outlasts the lease (10 s)
    start_worker(WORKER_CONCURRENCY="1")
    start_worker(WORKER_CONCURRENCY="1")  # would claim the connection once its lease ended
    wait_until(polled(stub_services, connection), 30, message="the poll")
    calls = stub_services.calls_for(connection.id)
    assert calls.count("claim") == 1 and stub_services.first_refusal(connection, "lease_lost") is None
    # Renewed in the background while the first batch was stored (every third of the lease), not more:
    # the heartbeats there, but the one before the second page's provider call.
    during = calls[calls.index("batch") + 1:calls.index("heartbeat+checkpoint")]
    assert 2 <= during.count("heartbeat") - 1 <= 4, calls
    assert len(stub_services.stored(connection)) == 30


@pytest.mark.parametrize("batch_size", ["25", "75"])  # one page, three pages per batch
def test_shutdown_finishes_the_batch_stores_its_checkpoint_and_releases(sim, stub_services, start_worker,
                                                                        batch_size):
    account = sim.account(invoices=200)
    sim.faults(account, slow_rate=1, slow_seconds=0.1)
    connection = stub_services.add(account["api_key"])
    worker = start_worker(WORKER_BATCH_SIZE=batch_size)
    wait_until(lambda: len(stub_services.stored(connection)) >= 50, 20)
    worker.shutdown()
    calls = stub_services.calls_for(connection.id)
    assert calls[-2:] == ["heartbeat+checkpoint", "release"]
    assert calls.count("batch") == calls.count("heartbeat+checkpoint")
    stored_before = len(stub_services.stored(connection))
    assert stored_before < 200
    sim.faults(account)
    start_worker(WORKER_BATCH_SIZE=batch_size)
    wait_until(polled(stub_services, connection), 20)
    stored = stub_services.stored(connection)
    assert len(stored) == 200 and all(s["writes"] == 1 for s in stored.values())


def test_high_fault_rates_lose_nothing(sim, stub_services, start_worker):
    account = sim.account(invoices=300)
    sim.faults(account, throttle_rate=0.3, retry_after=0, error_rate=0.3, malformed_rate=0.3)
    connection = stub_services.add(account["api_key"])
    connection.failing_batches = 2
    start_worker()
    wait_until(polled(stub_services, connection), 60)
    stored = stub_services.stored(connection)
    assert len(stored) == 300 and all(s["writes"] == 1 for s in stored.values())
    assert connection.failing_batches == 0  # both of its stores answered 503 were sent again
    stats = sim.stats(account)
    assert stats["throttled"] and stats["errors"] and stats["malformed"]


def test_throttling_beyond_the_policy_reports_retry_after(sim, stub_services, start_worker):
    account = sim.account(invoices=3)
    sim.faults(account, throttle_rate=1, retry_after=90)
    connection = stub_services.add(account["api_key"])
    start_worker()
    wait_until(lambda: connection.failures, 20)
    failure = connection.failures[0]
    assert failure["error"]["kind"] == "throttled" and failure["retry_after_seconds"] == 90


def test_several_connections_poll_concurrently_each_by_one_thread(sim, stub_services, start_worker):
    accounts = [sim.account(invoices=120) for _ in range(3)]
    for account in accounts:
        sim.faults(account, slow_rate=1, slow_seconds=0.05)
    connections = [stub_services.add(a["api_key"]) for a in accounts]
    start_worker()
    start_worker()  # two pollers side by side
    for connection in connections:
        wait_until(polled(stub_services, connection), 30)
    for account, connection in zip(accounts, connections, strict=True):
        assert len(stub_services.stored(connection)) == 120
        assert sim.stats(account)["max_concurrent"] == 1
    # Not one after the other: another connection was claimed before the first poll ended.
    ours = {connection.id for connection in connections}
    with stub_services.lock:
        calls = [(name, cid) for name, cid in stub_services.calls if cid in ours]
    first_done = next(index for index, (name, _) in enumerate(calls) if name == "poll-result:success")
    assert len({cid for name, cid in calls[:first_done] if name == "claim"}) >= 2
