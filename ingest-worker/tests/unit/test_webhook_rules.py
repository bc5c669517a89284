"""The receiver's and the processor's rules, with the services and the provider faked: one answer for
every unverifiable delivery, and an event that is only ever a reason to ask the provider."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import pytest
from bobdesk_shared.errors import ApiError
from ingest_worker.providers.base import GONE
from ingest_worker.providers.http import ProviderHttp, RetryPolicy
from ingest_worker.providers.yooz import YoozAdapter
from ingest_worker.upstream import Refused
from ingest_worker.webhooks.processor import EventProcessor
from ingest_worker.webhooks.services import Receiver

SECRET = "whsec_unit_0123456789"
CONNECTION = "64b2e4d19ab7e72a4fb4ac20"


class Connections:
    def __init__(self, answer):
        self.answer = answer

    def webhook_credentials(self, connection_id):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def webhook_result(self, connection_id, counts):
        pass


class Store:
    def __init__(self):
        self.recorded = []

    def record(self, provider, connection_id, event):
        self.recorded.append(event)
        return True


@pytest.fixture
def adapter():
    adapter = YoozAdapter("http://yooz.invalid", ProviderHttp("yooz", timeout=(1, 1), policy=RetryPolicy()))
    yield adapter
    adapter.close()


def delivery(type_="invoice.created"):
    body = json.dumps({"id": "evt_1", "type": type_, "created_at": "2024-07-03T09:46:40Z",
                       "data": {"invoice_id": "YZ-1"}}).encode()
    t = int(time.time())
    signature = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Yooz-Signature": f"t={t},v1={signature}"}, body


def answer(receiver, connection_id=CONNECTION):
    headers, body = delivery()
    try:
        receipt = receiver.receive("yooz", connection_id, headers, body)
    except ApiError as exc:
        return exc.status, exc.code, exc.message, exc.details
    return receipt.status, receipt.body


ACTIVE = {"id": CONNECTION, "client": "c" * 24, "provider": "yooz", "webhook_secret": SECRET, "api_key": "k"}


@pytest.mark.parametrize("credentials", [
    Refused(404, "not_found", "unknown"),
    Refused(404, "not_found", "deleted"),
    Refused(409, "connection_inactive", "inactive"),
    Refused(409, "no_webhook_secret", "none"),
    Refused(409, "undecryptable_secret", "lost key"),
    {**ACTIVE, "provider": "other"},
    {**ACTIVE, "webhook_secret": None},
])
def test_every_unusable_connection_is_answered_like_a_forged_signature(adapter, credentials):
    forged = Receiver({"yooz": adapter}, Connections({**ACTIVE, "webhook_secret": "another-secret"}), Store())
    expected = answer(forged)
    assert expected[:2] == (401, "invalid_signature")
    store = Store()
    assert answer(Receiver({"yooz": adapter}, Connections(credentials), store)) == expected
    assert answer(Receiver({"yooz": adapter}, Connections(credentials), store), "not-an-id") == expected
    assert store.recorded == []


def test_a_usable_connection_with_the_right_secret_is_accepted(adapter):
    store = Store()
    assert answer(Receiver({"yooz": adapter}, Connections(ACTIVE), store)) == (
        202, {"status": "accepted", "event_id": "evt_1"})
    assert [event.invoice_id for event in store.recorded] == ["YZ-1"]


class FetchingAdapter:
    key = "yooz"

    def __init__(self, document):
        self.document = document
        self.fetched = []

    def fetch_invoice(self, call, invoice_id):
        self.fetched.append(invoice_id)
        return self.document

    def to_canonical(self, document):
        return {"invoice_platform_id": document["id"], "cancelled": document["status"] == "deleted"}


class Invoices:
    def __init__(self):
        self.batches = []

    def store_batch(self, connection_id, fence, invoices, cancellations):
        self.batches.append((invoices, cancellations))
        return {"created": 0, "updated": len(invoices), "unchanged": 0, "cancelled": len(cancellations)}


def process(document, type_="invoice.deleted"):
    adapter, invoices = FetchingAdapter(document), Invoices()
    processor = EventProcessor(None, Connections(ACTIVE), invoices, {"yooz": adapter}, owner="t", max_attempts=1,
                               backoff_cap=1)
    event = {"provider": "yooz", "connection": CONNECTION, "type": type_, "invoice_id": "YZ-1",
             "event_created_at": "2024-07-03T09:46:40.000Z"}
    processor._process(event, threading.Event())
    return adapter.fetched, invoices.batches


def test_a_delete_event_for_an_invoice_the_provider_still_has_stores_what_the_provider_says():
    fetched, batches = process({"id": "YZ-1", "status": "validated"})
    assert fetched == ["YZ-1"]
    assert batches == [([{"invoice_platform_id": "YZ-1", "cancelled": False}], [])]


def test_a_delete_event_cancels_once_the_provider_confirms():
    assert process({"id": "YZ-1", "status": "deleted"})[1] == [
        ([{"invoice_platform_id": "YZ-1", "cancelled": True}], [])]
    assert process(GONE)[1] == [([], [{"invoice_platform_id": "YZ-1", "at": "2024-07-03T09:46:40.000Z"}])]


@pytest.mark.parametrize("type_", ["invoice.created", "invoice.updated", "invoice.deleted", "anything"])
def test_the_processor_never_reads_the_event_type(type_):
    assert process({"id": "YZ-1", "status": "paid"}, type_)[1] == [
        ([{"invoice_platform_id": "YZ-1", "cancelled": False}], [])]
