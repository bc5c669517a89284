"""Provider documents -> canonical invoices, the step the poller and the webhook processor share.

A document that cannot be mapped is skipped, counted and reported (a warning
naming the connection, the document and why); it never stops the others.
"""

from __future__ import annotations

import logging

from .canonical import InvalidInvoice
from .metrics import INVOICES
from .providers.base import ProviderAdapter

log = logging.getLogger(__name__)


def map_documents(adapter: ProviderAdapter, documents: list, *, connection_id: str,
                  source: str) -> tuple[list[dict], int]:
    """The canonical invoices of `documents` (one per id, the last copy wins) and how many were rejected."""
    invoices: dict[str, dict] = {}
    rejected = 0
    for document in documents:
        try:
            invoice = adapter.to_canonical(document)
        except InvalidInvoice as exc:
            rejected += 1
            INVOICES.labels(adapter.key, source, "rejected").inc()
            log.warning("invoice rejected", extra={"connection": connection_id, "provider": adapter.key,
                                                   "invoice_platform_id": exc.invoice_id, "reason": exc.reason})
            continue
        invoices[invoice["invoice_platform_id"]] = invoice
    return list(invoices.values()), rejected
