"""Pages grouped into store batches: whole pages, one listing per batch, at most `batch_size` invoices."""

from ingest_worker.poller.batches import BatchReader
from ingest_worker.providers.base import ChangesPage


class Adapter:
    key = "test"

    @staticmethod
    def to_canonical(document):
        return {"invoice_platform_id": document["id"], "version": document.get("version", 1)}


def page(*ids, last=False, listing=None, complete=False, gone=(), checkpoint=None):
    return ChangesPage([{"id": i} if isinstance(i, str) else i for i in ids], checkpoint or {"after": ids[-1]},
                       last=last, gone=gone, listing=listing, listing_complete=complete)


def batches(pages, page_size=2, batch_size=5):
    reader = BatchReader(Adapter(), iter(pages), connection_id="c", page_size=page_size, batch_size=batch_size)
    return list(iter(reader.next, None))


def test_the_first_page_is_stored_alone_then_pages_fill_a_batch_up_to_its_size_until_the_last():
    found = batches([page("a", "b"), page("c", "d"), page("e", "f"), page("g", "h"), page("i", last=True)])
    assert [[p.checkpoint["after"] for p in b.pages] for b in found] == [["b"], ["d", "f"], ["h", "i"]]
    assert [b.checkpoint for b in found] == [{"after": "b"}, {"after": "f"}, {"after": "i"}]
    assert [b.last for b in found] == [False, False, True]
    assert [len(b.invoices) for b in found] == [2, 4, 3]


def test_a_batch_holds_one_listing_and_ends_where_it_completes():
    found = batches([page("a", listing="L"), page("b", listing="L"), page("c", listing="L", complete=True),
                     page("d"), page("e", last=True)], page_size=1, batch_size=10)
    assert [(b.listing, b.listing_complete, len(b.pages)) for b in found] == [("L", False, 1), ("L", True, 2),
                                                                             (None, False, 2)]


def test_a_page_of_another_listing_or_too_big_opens_the_next_batch():
    found = batches([page("0"), page("a"), page("b", listing="L"), page("c", "d", "e", "f", "g", listing="L",
                                                                       last=True)], page_size=1, batch_size=5)
    assert [[len(p.documents) for p in b.pages] for b in found] == [[1], [1], [1], [5]]


def test_the_last_copy_of_an_invoice_wins_and_every_gone_id_rides_along():
    found = batches([page("0"), page({"id": "a"}, "b", gone=("x",)), page({"id": "a", "version": 2}, gone=("y",),
                                                                         last=True)], page_size=2, batch_size=10)
    _, batch = found
    assert batch.invoices == [{"invoice_platform_id": "a", "version": 2}, {"invoice_platform_id": "b", "version": 1}]
    assert batch.gone == ["x", "y"]


def test_a_batch_is_stored_beside_earlier_ones_of_its_listing_sharing_no_invoice():
    first, second, third = batches([page("a"), page("b", "c"), page("d", "e", last=True)], page_size=2,
                                   batch_size=2)
    assert second.may_be_stored_beside([]) and second.may_be_stored_beside([first])
    assert third.may_be_stored_beside([first, second])
    # The same invoice in both (changed while the listing was read): the later copy waits for the first.
    again, changed = batches([page("a"), page({"id": "a", "version": 2}, last=True)])
    assert not changed.may_be_stored_beside([again])
    # An invoice the provider no longer has counts as one stored.
    kept, gone = batches([page("a"), page("b", gone=("a",), last=True)])
    assert not gone.may_be_stored_beside([kept])


def test_a_batch_waits_for_another_listing_and_the_one_completing_a_listing_for_all():
    before, listed, completing = batches([page("a"), page("b", listing="L"), page("c", listing="L", complete=True,
                                                                                   last=True)], page_size=1,
                                         batch_size=1)
    assert not listed.may_be_stored_beside([before])  # another listing (none)
    assert not completing.may_be_stored_beside([listed])
    assert completing.may_be_stored_beside([])
