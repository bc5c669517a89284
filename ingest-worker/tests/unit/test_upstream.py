"""Batches are split to fit invoices-service's limits (500 invoices, 5 MiB)."""

from ingest_worker import upstream


def invoice(identifier, size=10):
    return {"invoice_platform_id": identifier, "raw": {"blob": "x" * size}}


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
    assert all(sum(len(i["raw"]["blob"]) for i in p) <= upstream.MAX_BATCH_BYTES for p, _ in parts)
    assert sum(len(p) for p, _ in parts) == 10
    assert [len(c) for _, c in parts] == [1] + [0] * (len(parts) - 1)
