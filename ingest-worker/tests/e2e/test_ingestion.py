"""End to end through real processes: simulator, both services, the webhook receiver and the poller."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
import requests
from bobdesk_devtools.testing import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("cleanup")]


def by_platform_id(invoices: list[dict]) -> dict[str, dict]:
    return {i["invoice_platform_id"]: i for i in invoices}


def exactly_once(invoices: list[dict], expected_ids: set[str]) -> None:
    ids = [i["invoice_platform_id"] for i in invoices]
    assert len(ids) == len(set(ids)), "an invoice is listed twice"
    assert set(ids) == expected_ids


def test_polling_brings_every_invoice_exactly_and_sets_last_polled_at(stack):
    account = stack.account(invoices=30)
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"])
    assert connection["lastPolledAt"] is None
    stack.wait_polled(company, connection["id"], timeout=15)
    listed = by_platform_id(stack.invoices(company))
    provider = {d["id"]: d for d in stack.sim_invoices(account)}
    assert set(listed) == set(provider)
    for identifier, document in provider.items():
        invoice = listed[identifier]
        assert invoice["amounts"] == {"ht": Decimal(document["total_excl_tax"]),
                                      "tva": Decimal(document["total_tax"]),
                                      "ttc": Decimal(document["total_incl_tax"])}
        assert invoice["number"] == document["number"] and invoice["provider"] == "yooz"
        assert invoice["supplier"]["siret"] == document["supplier"]["siret"]
        assert invoice["issue_date"] == f"{document['issue_date']}T00:00:00.000Z"


def test_an_update_moves_updated_at_and_a_replay_does_not(stack, mongo_client):
    account = stack.account(invoices=3)
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"], account["webhook_secret"])
    polled = stack.wait_polled(company, connection["id"], timeout=15)
    target = stack.sim_invoices(account)[1]["id"]
    before = by_platform_id(stack.invoices(company))[target]

    stack.sim("PATCH", f"{account['id']}/invoices/{target}",
              json={"fields": {"total_excl_tax": "10.10", "total_tax": "2.02", "total_incl_tax": "12.12"},
                    "webhook": False})
    polled = stack.wait_polled(company, connection["id"], after=polled, timeout=15)
    updated = by_platform_id(stack.invoices(company))[target]
    assert updated["amounts"]["ttc"] == Decimal("12.12")
    assert updated["updated_at"] > before["updated_at"]

    # Replays: an invoice.updated event with nothing new, and more polls re-reading the last page.
    sent = stack.send_webhook(account, connection["id"], type="invoice.updated", invoice_id=target)
    assert sent["status"] == 202
    events = mongo_client[stack.env["INGEST_DB"]]["webhook_events"]
    wait_until(lambda: events.find_one({"event_id": sent["event"]["id"], "status": "done"}), 15)
    stack.wait_polled(company, connection["id"], after=polled, timeout=15)
    replayed = by_platform_id(stack.invoices(company))
    assert replayed[target]["updated_at"] == updated["updated_at"]
    assert len(replayed) == 3


def test_a_bad_key_leaves_last_polled_at_null_until_rotated(stack):
    account = stack.account(invoices=4)
    company = stack.company()
    connection = stack.create_connection(company, "yz_wrong_key_0123456789")
    wait_until(lambda: '"error_kind":"bad_credentials"' in stack.poller.output(), 10)
    time.sleep(1)
    assert stack.connection(company, connection["id"])["lastPolledAt"] is None
    assert stack.invoices(company) == []
    stack.patch_connection(company, connection["id"], apiKey=account["api_key"])
    stack.wait_polled(company, connection["id"], timeout=20)
    assert len(stack.invoices(company)) == 4
    assert "yz_wrong_key_0123456789" not in stack.poller.output()


@pytest.mark.parametrize("stop", ["deactivate", "delete"])
def test_deactivating_or_deleting_stops_provider_calls_within_seconds(stack, stop):
    account = stack.account(invoices=1500)
    stack.faults(account, slow_rate=1, slow_seconds=0.3, endpoints=["list"])
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"])
    wait_until(lambda: stack.sim_stats(account)["list_requests"] >= 2, 15)
    if stop == "deactivate":
        stack.patch_connection(company, connection["id"], active=False)
    else:
        stack.delete_connection(company, connection["id"])
    time.sleep(1.5)  # a provider call in flight may still finish
    calls = stack.sim_stats(account)["requests"]
    time.sleep(POLL_GRACE)
    assert stack.sim_stats(account)["requests"] == calls
    assert stack.sim_stats(account)["in_flight"] == 0


POLL_GRACE = 3


def test_throttling_errors_and_malformed_answers_at_a_high_rate_lose_nothing(stack):
    account = stack.account(invoices=300)
    stack.faults(account, throttle_rate=0.3, retry_after=1, error_rate=0.25, malformed_rate=0.25)
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"])
    # Polls repeat every POLL_INTERVAL_SECONDS: wait until every kind of fault has been served,
    # then for a successful poll after that, so the assertion never depends on a lucky draw.
    wait_until(lambda: all(stack.sim_stats(account)[kind] for kind in ("throttled", "errors", "malformed")),
               90, 0.2, "every kind of fault served")
    stack.wait_polled(company, connection["id"], after=stack.connection(company, connection["id"])["lastPolledAt"],
                      timeout=90)
    exactly_once(stack.invoices(company), {d["id"] for d in stack.sim_invoices(account)})


def test_a_worker_killed_during_a_large_ingest_ends_with_every_invoice_once(stack):
    account = stack.account(invoices=2000)
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"])
    try:
        for pages in (3, 8, 13):
            wait_until(lambda p=pages: stack.sim_stats(account)["list_requests"] >= p, 60)
            stack.kill_poller()
            stack.restart_poller()
    finally:
        if stack.poller.popen.poll() is not None:
            stack.restart_poller()
    stack.wait_polled(company, connection["id"], timeout=90)
    exactly_once(stack.invoices(company), {d["id"] for d in stack.sim_invoices(account)})


def test_two_workers_never_poll_one_connection_at_once(stack):
    second = stack.start_poller()
    try:
        accounts = [stack.account(invoices=300) for _ in range(3)]
        companies = [stack.company() for _ in accounts]
        for account in accounts:
            stack.faults(account, slow_rate=1, slow_seconds=0.05)
        connections = [stack.create_connection(c, a["api_key"]) for c, a in zip(companies, accounts, strict=True)]
        for company, connection in zip(companies, connections, strict=True):
            polled = stack.wait_polled(company, connection["id"], timeout=60)
            stack.wait_polled(company, connection["id"], after=polled, timeout=20)  # and polled again
        for account, company in zip(accounts, companies, strict=True):
            assert stack.sim_stats(account)["max_concurrent"] == 1
            exactly_once(stack.invoices(company), {d["id"] for d in stack.sim_invoices(account)})
    finally:
        second.stop()


def test_a_signed_webhook_shows_a_new_invoice_within_seconds_while_polling_is_slow(stack, mongo_client):
    account = stack.account(invoices=2)
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"], account["webhook_secret"])
    stack.wait_polled(company, connection["id"], timeout=15)
    stack.faults(account, slow_rate=1, slow_seconds=4.5, endpoints=["list"])
    time.sleep(0.5)
    created = stack.sim("POST", f"{account['id']}/invoices", json={"webhook": False}).json()
    started = time.monotonic()
    assert stack.send_webhook(account, connection["id"], invoice_id=created["id"])["status"] == 202
    wait_until(lambda: created["id"] in by_platform_id(stack.invoices(company)), 4, 0.1, "webhook invoice")
    assert time.monotonic() - started < 4
    stack.faults(account)

    # A signed delete is only a notification: while Yooz still has the invoice, nothing is cancelled.
    event = stack.send_webhook(account, connection["id"], type="invoice.deleted", invoice_id=created["id"])
    events = mongo_client[stack.env["INGEST_DB"]]["webhook_events"]
    wait_until(lambda: events.find_one({"event_id": event["event"]["id"], "status": "done"}), 5, 0.1, "processed")
    assert by_platform_id(stack.invoices(company))[created["id"]]["state"] != "cancelled"
    stack.sim("DELETE", f"{account['id']}/invoices/{created['id']}", params={"webhook": "0"})
    stack.send_webhook(account, connection["id"], type="invoice.deleted", invoice_id=created["id"])
    wait_until(lambda: by_platform_id(stack.invoices(company))[created["id"]]["state"] == "cancelled", 5)


def test_forged_stale_and_replayed_events_change_nothing(stack, mongo_client):
    account = stack.account(invoices=1)
    company = stack.company()
    connection = stack.create_connection(company, account["api_key"], account["webhook_secret"])
    stack.wait_polled(company, connection["id"], timeout=15)
    stack.faults(account, slow_rate=1, slow_seconds=10, endpoints=["list"])  # polling cannot bring it
    hidden = stack.sim("POST", f"{account['id']}/invoices", json={"webhook": False}).json()
    events = mongo_client[stack.env["INGEST_DB"]]["webhook_events"]
    before = events.count_documents({})

    forged = stack.send_webhook(account, connection["id"], invoice_id=hidden["id"], secret="whsec_forged_000000")
    stale = stack.send_webhook(account, connection["id"], invoice_id=hidden["id"], timestamp_offset=-400)
    future = stack.send_webhook(account, connection["id"], invoice_id=hidden["id"], timestamp_offset=400)
    assert [forged["status"], stale["status"], future["status"]] == [401, 401, 401]
    assert forged["response"]["error"]["code"] == "invalid_signature"
    unsigned = requests.post(f"{stack.webhooks_url}/webhooks/yooz/{connection['id']}", timeout=5,
                             data=json.dumps(forged["event"]))
    assert unsigned.status_code == 401
    # An unknown connection is answered exactly like a forged signature on a real one.
    unknown = stack.send_webhook(account, "6" * 24, invoice_id=hidden["id"])
    assert (unknown["status"], unknown["response"]) == (forged["status"], forged["response"])
    assert events.count_documents({}) == before

    kept = stack.invoices(company)[0]
    replay_id = "evt_replay_e2e_1"
    first = stack.send_webhook(account, connection["id"], type="invoice.updated",
                               invoice_id=kept["invoice_platform_id"], event_id=replay_id)
    again = stack.send_webhook(account, connection["id"], type="invoice.updated",
                               invoice_id=kept["invoice_platform_id"], event_id=replay_id)
    assert (first["status"], again["status"]) == (202, 200)
    assert again["response"]["status"] == "duplicate"
    assert events.count_documents({"event_id": replay_id}) == 1
    time.sleep(1)
    listed = by_platform_id(stack.invoices(company))
    assert hidden["id"] not in listed
    assert listed[kept["invoice_platform_id"]]["updated_at"] == kept["updated_at"]
    stack.faults(account)


def test_webhook_refusals_tell_nothing_of_the_connections_state(stack):
    account = stack.account(invoices=1)
    company = stack.company()
    without_secret = stack.create_connection(company, account["api_key"])
    body = json.dumps({"id": "evt_1", "type": "invoice.created", "created_at": "2024-01-01T00:00:00Z",
                       "data": {"invoice_id": "YZ-1"}}).encode()
    t = int(time.time())
    headers = {"Yooz-Signature": f"t={t},v1=" + hmac.new(account["webhook_secret"].encode(), f"{t}.".encode() + body,
                                                          hashlib.sha256).hexdigest()}

    def post(provider, connection_id):
        response = requests.post(f"{stack.webhooks_url}/webhooks/{provider}/{connection_id}", data=body,
                                 headers=headers, timeout=5)
        return response.status_code, response.json()

    # Signed with the account's real secret, yet every unusable connection gets one and the same 401.
    unverifiable = (401, {"error": {"code": "invalid_signature",
                                    "message": "No signature matches the connection's webhook secret."}})
    assert post("yooz", without_secret["id"]) == unverifiable
    assert post("acme", without_secret["id"])[0] == 404
    assert post("yooz", "64b2e4d19ab7e72a4fb4ac20") == unverifiable
    assert post("yooz", "not-an-id") == unverifiable
    stack.patch_connection(company, without_secret["id"], webhookSecret=account["webhook_secret"], active=False)
    assert post("yooz", without_secret["id"]) == unverifiable
    stack.delete_connection(company, without_secret["id"])
    assert post("yooz", without_secret["id"]) == unverifiable
    assert account["webhook_secret"] not in "".join(p.output() for p in stack.processes)


def test_operations_endpoints(stack):
    metrics = requests.get(f"{stack.poller.metrics_url}/metrics", timeout=5).text
    assert "ingest_pages_fetched_total" in metrics and "ingest_poll_duration_seconds" in metrics
    assert requests.get(f"{stack.poller.metrics_url}/readyz", timeout=5).status_code == 200
    assert requests.get(f"{stack.webhooks_url}/readyz", timeout=5).status_code == 200
    assert "ingest_webhooks_received_total" in requests.get(f"{stack.webhooks_url}/metrics", timeout=5).text
