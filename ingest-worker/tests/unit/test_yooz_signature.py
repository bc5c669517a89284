"""Webhook signatures: good, bad, stale, future, several v1, empty or malformed header, bad bodies."""

import hashlib
import hmac
import json

import pytest
from ingest_worker.providers.base import MalformedEvent, SignatureRejected
from ingest_worker.providers.http import ProviderHttp, RetryPolicy
from ingest_worker.providers.yooz import YoozAdapter

SECRET = "whsec_test_0123456789"
NOW = 1_720_000_000
EVENT = {"id": "evt_1", "type": "invoice.created", "created_at": "2024-07-03T09:46:40Z",
         "data": {"invoice_id": "YZ-2024-00871"}}


@pytest.fixture
def adapter():
    adapter = YoozAdapter("http://yooz.invalid", ProviderHttp("yooz", timeout=(1, 1), policy=RetryPolicy()))
    yield adapter
    adapter.close()


def sign(body: bytes, t: int = NOW, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def body_of(event=EVENT) -> bytes:
    return json.dumps(event).encode()


def test_a_good_signature_gives_the_event(adapter):
    body = body_of()
    event = adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)}"}, body, NOW)
    assert (event.id, event.type, event.invoice_id) == ("evt_1", "invoice.created", "YZ-2024-00871")
    assert event.created_at == "2024-07-03T09:46:40.000Z"


def test_the_signature_covers_the_raw_body_byte_for_byte(adapter):
    body = body_of()
    respaced = json.dumps(EVENT, indent=2).encode()  # same JSON, other bytes
    with pytest.raises(SignatureRejected):
        adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)}"}, respaced, NOW)


@pytest.mark.parametrize("header", [
    lambda b: f"t={NOW},v1={sign(b, secret='another-secret')}",
    lambda b: f"t={NOW},v1={'0' * 64}",
    lambda b: f"t={NOW + 1},v1={sign(b)}",  # timestamp is signed too
    lambda b: f"t={NOW},v0={sign(b)}",
    lambda b: f"t={NOW},v1={sign(b)[:-2]}",
])
def test_a_bad_signature_is_rejected(adapter, header):
    body = body_of()
    with pytest.raises(SignatureRejected) as caught:
        adapter.verify_webhook(SECRET, {"Yooz-Signature": header(body)}, body, NOW)
    assert caught.value.status == 401


@pytest.mark.parametrize("skew, accepted", [(-301, False), (-300, True), (0, True), (300, True), (301, False),
                                            (-86400, False), (86400, False)])
def test_stale_and_future_timestamps(adapter, skew, accepted):
    body = body_of()
    t = NOW + skew
    headers = {"Yooz-Signature": f"t={t},v1={sign(body, t)}"}
    if accepted:
        assert adapter.verify_webhook(SECRET, headers, body, NOW).id == "evt_1"
    else:
        with pytest.raises(SignatureRejected) as caught:
            adapter.verify_webhook(SECRET, headers, body, NOW)
        assert caught.value.code == "stale_signature"


def test_any_one_valid_v1_among_several_suffices(adapter):
    body = body_of()
    old = sign(body, secret="the-previous-secret")
    for header in (f"t={NOW},v1={old},v1={sign(body)}", f"t={NOW},v1={sign(body)},v1={old}",
                   f"v1={old}, t={NOW}, v1={sign(body).upper()}"):
        assert adapter.verify_webhook(SECRET, {"Yooz-Signature": header}, body, NOW).id == "evt_1"


@pytest.mark.parametrize("headers", [{}, {"Yooz-Signature": ""}, {"Yooz-Signature": "   "}])
def test_an_empty_or_missing_header_is_rejected(adapter, headers):
    with pytest.raises(SignatureRejected) as caught:
        adapter.verify_webhook(SECRET, headers, body_of(), NOW)
    assert caught.value.code == "missing_signature"


@pytest.mark.parametrize("header", [
    "garbage", f"v1={'a' * 64}", f"t=abc,v1={'a' * 64}", f"t={NOW}", f"t={NOW},t={NOW},v1={'a' * 64}",
    f"t={NOW}," + ",".join(f"v1={'a' * 64}" for _ in range(9)), f"t={NOW},v1={'a' * 3000}",
])
def test_a_malformed_header_is_rejected(adapter, header):
    with pytest.raises(SignatureRejected):
        adapter.verify_webhook(SECRET, {"Yooz-Signature": header}, body_of(), NOW)


@pytest.mark.parametrize("event", [
    b"not json", b"[1, 2]", {"type": "invoice.created", "created_at": "2024-07-03T09:46:40Z",
                              "data": {"invoice_id": "YZ-1"}},
    {**EVENT, "data": {}}, {**EVENT, "data": None}, {**EVENT, "created_at": "yesterday"}, {**EVENT, "id": ""},
    {**EVENT, "type": None},
    # Every field is untrusted: a wrong type anywhere is a 400, never a crash (a list is unhashable).
    {**EVENT, "type": ["invoice.created"]}, {**EVENT, "type": {"a": 1}}, {**EVENT, "id": ["evt"]},
    {**EVENT, "id": 7}, {**EVENT, "created_at": 1720000000}, {**EVENT, "created_at": ["x"]},
    {**EVENT, "data": ["YZ-1"]}, {**EVENT, "data": {"invoice_id": ["YZ-1"]}}, {**EVENT, "data": {"invoice_id": 7}},
    {**EVENT, "data": {"invoice_id": "x" * 201}}, {**EVENT, "type": "x" * 201},
    b"[" * 5000 + b"]" * 5000,
])
def test_a_signed_but_malformed_body_is_a_400(adapter, event):
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    with pytest.raises(MalformedEvent) as caught:
        adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)}"}, body, NOW)
    assert caught.value.status == 400


def test_a_list_typed_event_names_the_field():
    body = json.dumps({**EVENT, "type": ["invoice.deleted"]}).encode()
    adapter = YoozAdapter("http://yooz.invalid", ProviderHttp("yooz", timeout=(1, 1), policy=RetryPolicy()))
    with pytest.raises(MalformedEvent) as caught:
        adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)}"}, body, NOW)
    assert caught.value.code == "validation_error" and caught.value.details == {"type": ["Not a valid string."]}


@pytest.mark.parametrize("type_", ["invoice.created", "invoice.updated", "invoice.deleted"])
def test_every_invoice_event_is_a_refresh_of_that_invoice(adapter, type_):
    body = body_of({**EVENT, "type": type_})
    event = adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)}"}, body, NOW)
    assert event.invoice_id == "YZ-2024-00871"  # a deletion too: the provider decides what it becomes


def test_an_unhandled_event_type_is_parsed_without_an_invoice(adapter):
    body = body_of({"id": "evt_2", "type": "supplier.updated", "created_at": "2024-07-03T09:46:40Z", "data": {}})
    event = adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)}"}, body, NOW)
    assert event.type == "supplier.updated" and event.invoice_id is None


def test_signatures_are_compared_in_constant_time(adapter, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("ingest_worker.providers.yooz.hmac.compare_digest", spy)
    body = body_of()
    adapter.verify_webhook(SECRET, {"Yooz-Signature": f"t={NOW},v1={sign(body)},v1={'0' * 64}"}, body, NOW)
    assert len(calls) == 2  # every candidate compared, none with ==
