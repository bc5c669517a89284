"""Batches are split to fit invoices-service's limits (500 invoices, 5 MiB); refusals and failures are typed."""

import json
import threading

import pytest
from bobdesk_shared.auth import ServiceTokenSource
from ingest_worker import upstream
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def invoice(identifier, size=10):
    return upstream.invoice_texts([{"invoice_platform_id": identifier, "raw": {"blob": "x" * size}}])[0]


def test_a_small_page_is_one_batch_with_its_cancellations():
    cancellations = [{"invoice_platform_id": "C", "at": "2024-01-01T00:00:00.000Z"}]
    parts = list(upstream._split([invoice("A"), invoice("B")], cancellations))
    assert parts == [([invoice("A"), invoice("B")], cancellations)]


def test_cancellations_alone_are_one_batch():
    assert list(upstream._split([], [{"invoice_platform_id": "C", "at": "x"}])) == [
        ([], [{"invoice_platform_id": "C", "at": "x"}])]


def test_batches_hold_at_most_500_invoices_and_4_mib():
    parts = list(upstream._split([invoice(str(i)) for i in range(1201)], []))
    assert [len(p) for p, _ in parts] == [500, 500, 201]
    big = [invoice(str(i), 900_000) for i in range(10)]
    parts = list(upstream._split(big, [{"invoice_platform_id": "C", "at": "x"}]))
    assert all(sum(len(text) + 1 for text in p) <= upstream.MAX_BATCH_BYTES for p, _ in parts)
    assert sum(len(p) for p, _ in parts) == 10
    assert [len(c) for _, c in parts] == [1] + [0] * (len(parts) - 1)


def test_the_batch_body_is_the_envelope_with_its_invoices_encoded_once():
    invoices = [{"invoice_platform_id": "A", "raw": {"note": "é \u2028"}}, {"invoice_platform_id": "B", "raw": {}}]
    envelope = {"connection": "0" * 24, "fence": None, "cancellations": [], "listing": "L"}
    for part in (invoices, []):
        body = upstream._batch_body(envelope, upstream.invoice_texts(part))
        assert json.loads(body) == {**envelope, "invoices": part}


@pytest.fixture
def answering():
    """A service answering each request with the next (status, body) given."""
    replies = []

    @Request.application
    def app(request):
        status, body = replies.pop(0)
        return Response(body, status=status, content_type="application/json")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = upstream.ConnectionsApi(f"http://127.0.0.1:{server.server_port}", ServiceTokenSource("s" * 32, "test"),
                                  attempts=1)
    yield replies, api
    api.close()
    server.shutdown()


@pytest.mark.parametrize("status, body, code", [
    (409, '{"error": {"code": "lease_lost", "message": "fenced"}}', "lease_lost"),
    (409, "<html>conflict</html>", "conflict"),
    (404, "", "not_found"),
])
def test_a_refusal_is_named_by_its_code_or_else_by_its_status(answering, status, body, code):
    replies, api = answering
    replies.append((status, body))
    with pytest.raises(upstream.Refused) as caught:
        api.release("0" * 24, 1)
    assert caught.value.code == code and caught.value.status == status


def test_a_service_failure_is_an_upstream_error(answering):
    replies, api = answering
    replies.append((503, "{}"))
    with pytest.raises(upstream.UpstreamError, match="HTTP 503"):
        api.release("0" * 24, 1)
