"""Store batches: consecutive pages of changes stored as one batch and checkpointed by their last page.

A provider page holds at most 100 invoices; the batch endpoint takes 500. Each batch costs a fixed
part whatever its size (authorize-ingest, the lookups, the HTTP round trip, the checkpoint), so the
poller stores whole pages together, up to `batch_size` invoices. A batch holds the pages of one
listing (or of none); it ends with the poll's last page and with the page that completes a listing
(the listing's completion follows its last batch). Its checkpoint is its last page's: stored once
the whole batch is, so a kill replays at most one batch, and ingestion is idempotent. A poll's first
batch is its first page alone: storing starts as soon as one page is read, and the next batch is read
while it is stored.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

from ..ingestion import map_documents
from ..metrics import PAGES_FETCHED
from ..providers.base import ChangesPage, ProviderAdapter
from ..upstream import invoice_texts


@dataclasses.dataclass(frozen=True)
class StoreBatch:
    """Pages stored together: their canonical invoices (one per id, the last copy wins) and their JSON
    (encoded on the reader thread, off the storing path), how many of their documents were rejected,
    and what the provider no longer has."""

    pages: tuple[ChangesPage, ...]
    invoices: list[dict]
    texts: list[str]
    rejected: int

    @property
    def checkpoint(self) -> dict:
        return self.pages[-1].checkpoint

    @property
    def last(self) -> bool:
        return self.pages[-1].last

    @property
    def listing(self) -> str | None:
        return self.pages[0].listing

    @property
    def listing_complete(self) -> bool:
        return self.pages[-1].listing_complete

    @property
    def gone(self) -> list[str]:
        return [identifier for page in self.pages for identifier in page.gone]

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        """The provider ids it stores or cancels."""
        return frozenset([*(invoice["invoice_platform_id"] for invoice in self.invoices), *self.gone])

    def may_be_stored_beside(self, others: list[StoreBatch]) -> bool:
        """Whether it may be stored while `others` (earlier batches of its poll) are: they share no
        invoice (which write lands last would be a race), belong to its listing, and it does not
        complete that listing (the completion cancels what the listing's batches did not list, so
        every one of them is stored before it)."""
        return not others or (not self.listing_complete and all(
            other.listing == self.listing and other.keys.isdisjoint(self.keys) for other in others))


class BatchReader:
    """Reads and maps the pages of `pages` into store batches (`next`), on the poll's reader thread."""

    def __init__(self, adapter: ProviderAdapter, pages: Iterator[ChangesPage], *, connection_id: str,
                 page_size: int, batch_size: int):
        self.adapter, self.pages, self.connection_id = adapter, pages, connection_id
        self.page_size, self.batch_size = page_size, batch_size
        # A page read but not fitting the batch before it (another listing, or more invoices than a page
        # should hold) opens the next one.
        self._carried: tuple[ChangesPage, list[dict], int] | None = None
        self._first = True

    def _read(self) -> tuple[ChangesPage, list[dict], int] | None:
        page = next(self.pages, None)
        if page is None:
            return None
        PAGES_FETCHED.labels(self.adapter.key).inc()
        invoices, rejected = map_documents(self.adapter, page.documents, connection_id=self.connection_id,
                                           source="poll")
        return page, invoices, rejected

    def next(self) -> StoreBatch | None:
        """The next batch, None after the last page."""
        pages: list[ChangesPage] = []
        invoices: dict[str, dict] = {}
        rejected = documents = 0
        while (read := self._carried or self._read()) is not None:
            self._carried = None
            page, mapped, page_rejected = read
            if pages and (page.listing != pages[0].listing or documents + len(mapped) > self.batch_size):
                self._carried = read
                break
            pages.append(page)
            rejected += page_rejected
            documents += len(mapped)
            invoices.update((invoice["invoice_platform_id"], invoice) for invoice in mapped)
            if self._first or page.last or page.listing_complete or documents + self.page_size > self.batch_size:
                break
        if not pages:
            return None
        self._first = False
        return StoreBatch(tuple(pages), list(invoices.values()), invoice_texts(list(invoices.values())), rejected)
