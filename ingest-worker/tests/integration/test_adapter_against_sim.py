"""The Yooz adapter against the simulator over real HTTP: faults at a high rate lose nothing."""

import pytest
import requests
from ingest_worker.providers.base import BadCredentials, StaticCall
from ingest_worker.providers.http import ProviderHttp, RetryPolicy
from ingest_worker.providers.yooz import YoozAdapter


@pytest.fixture
def adapter(sim_server):
    adapter = YoozAdapter(sim_server.url, ProviderHttp(
        "yooz", timeout=(1, 0.5), policy=RetryPolicy(max_attempts=12, backoff_base=0.001, backoff_cap=0.01,
                                                     max_retry_after=5)))
    yield adapter
    adapter.close()


class NoWait(StaticCall):
    def wait(self, seconds):
        pass


def new_account(sim_server, **body):
    return requests.post(f"{sim_server.url}/_admin/accounts", json=body, timeout=5).json()


def test_a_faulty_provider_still_yields_every_invoice_exactly_once(sim_server, adapter):
    account = new_account(sim_server, invoices=450)
    requests.put(f"{sim_server.url}/_admin/accounts/{account['id']}/faults", timeout=5, json={
        "throttle_rate": 0.25, "retry_after": 0, "error_rate": 0.25, "malformed_rate": 0.25,
        "slow_rate": 0.05, "slow_seconds": 0.7,
    })
    seen, checkpoint = [], None
    for page in adapter.list_changes(NoWait(account["api_key"]), None, 40):
        seen += [d["id"] for d in page.documents]
        checkpoint = page.checkpoint
    assert len(seen) == 450 and len(set(seen)) == 450
    stats = requests.get(f"{sim_server.url}/_admin/accounts/{account['id']}/stats", timeout=5).json()
    assert stats["throttled"] and stats["errors"] and stats["malformed"]

    # Nothing changed since: a poll from the checkpoint re-reads only the last timestamp.
    again = [d["id"] for p in adapter.list_changes(NoWait(account["api_key"]), checkpoint, 40) for d in p.documents]
    assert again == seen[-1:]


def test_resuming_mid_listing_from_a_page_checkpoint_loses_and_repeats_nothing(sim_server, adapter):
    account = new_account(sim_server, invoices=95)
    call = NoWait(account["api_key"])
    pages = adapter.list_changes(call, None, 10)
    first = [next(pages) for _ in range(3)]
    pages.close()  # "killed" after storing three pages
    rest = list(adapter.list_changes(call, first[-1].checkpoint, 10))
    ids = [d["id"] for p in first + rest for d in p.documents]
    assert len(ids) == 95 and len(set(ids)) == 95


def test_changes_after_a_checkpoint_are_listed(sim_server, adapter):
    account = new_account(sim_server, invoices=5)
    call = NoWait(account["api_key"])
    checkpoint = list(adapter.list_changes(call, None, 100))[-1].checkpoint
    listing = requests.get(f"{sim_server.url}/_admin/accounts/{account['id']}/invoices", timeout=5).json()["invoices"]
    requests.patch(f"{sim_server.url}/_admin/accounts/{account['id']}/invoices/{listing[0]['id']}", timeout=5,
                   json={"fields": {"status": "paid"}})
    changed = [d for p in adapter.list_changes(call, checkpoint, 100) for d in p.documents]
    assert [d["id"] for d in changed][-1] == listing[0]["id"] and changed[-1]["status"] == "paid"


def test_a_wrong_key_is_bad_credentials(sim_server, adapter):
    with pytest.raises(BadCredentials):
        list(adapter.list_changes(NoWait("yz_wrong_key_123"), None, 10))


def test_the_simulator_signs_webhooks_the_adapter_verifies(sim_server, adapter):
    captured = {}

    def receiver(environ, start_response):
        captured["body"] = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        captured["signature"] = environ["HTTP_YOOZ_SIGNATURE"]
        start_response("202 Accepted", [("Content-Type", "application/json")])
        return [b'{"status": "accepted"}']

    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, receiver)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    account = new_account(sim_server, webhook_secret="whsec_integration_1")
    answer = requests.post(f"{sim_server.url}/_admin/accounts/{account['id']}/webhooks", timeout=10, json={
        "invoice_id": "YZ-1", "type": "invoice.updated", "url": f"http://127.0.0.1:{server.server_port}/hook"}).json()
    thread.join(5)
    server.server_close()
    assert answer["status"] == 202
    event = adapter.verify_webhook("whsec_integration_1", {"Yooz-Signature": captured["signature"]}, captured["body"])
    assert (event.id, event.type, event.invoice_id) == (answer["event"]["id"], "invoice.updated", "YZ-1")
