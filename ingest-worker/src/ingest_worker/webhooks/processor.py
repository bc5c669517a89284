"""Processes accepted webhook events: fetch the invoice an event names, publish what the provider says.

Runs as a loop in the poller process and as a background thread of each
webhook-receiver worker (woken at once when that worker accepts an event).
Events are claimed with a lease (events.py), so any number of processors share
the queue and an event whose processor died is taken up again.

- every event is a notification, whatever its type: fetch the invoice from the
  provider, map it, publish it as a batch with fence null (a deleted status maps to
  a cancelled invoice); gone at the provider (404): publish a cancellation. A signed
  "deleted" event alone never cancels anything, so a leaked webhook secret cannot.
- connection unknown, deleted, inactive or without webhook secret by now: the
  event is dropped (the connection no longer ingests anything).
- provider or service failure: retried later by the platform's backoff (from 2 s,
  capped at the poll interval: polling catches up anyway), up to a maximum.
"""

from __future__ import annotations

import logging
import threading

from bobdesk_shared.logs import register_secret
from bobdesk_shared.retry import backoff_delay
from pymongo.errors import PyMongoError

from ..ingestion import map_documents
from ..metrics import WEBHOOKS_PROCESSED, count_outcomes
from ..providers.base import GONE, Aborted, ProviderAdapter, ProviderError, StaticCall
from ..upstream import ConnectionsApi, InvoicesApi, Refused, UpstreamError
from .events import EventStore

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 2.0
LEASE_SECONDS = 120


class EventProcessor:
    def __init__(self, store: EventStore, connections: ConnectionsApi, invoices: InvoicesApi,
                 adapters: dict[str, ProviderAdapter], *, owner: str, max_attempts: int, backoff_cap: float,
                 idle_seconds: float = 1.0):
        self.store = store
        self.connections = connections
        self.invoices = invoices
        self.adapters = adapters
        self.owner = owner
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap
        self.idle_seconds = idle_seconds
        self.wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Process events until `stop`; between empty claims, sleep until woken or `idle_seconds`."""
        while not stop.is_set():
            try:
                worked = self.process_one(stop)
            except PyMongoError as exc:
                log.warning("INGEST_DB unavailable to the webhook processor", extra={"error": str(exc)[:200]})
                worked = False
            except Exception:
                log.exception("webhook processor error")
                worked = False
            if not worked:
                self.wake.wait(self.idle_seconds)
                self.wake.clear()

    def start_thread(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="webhook-processor", daemon=True)
        thread.start()
        return thread

    def process_one(self, stop: threading.Event | None = None) -> bool:
        """Claim and process one due event; False when none was due."""
        event = self.store.claim(self.owner, LEASE_SECONDS)
        if event is None:
            return False
        context = {"connection": event["connection"], "provider": event["provider"], "event_id": event["event_id"],
                   "type": event["type"], "invoice_platform_id": event["invoice_id"], "attempt": event["attempts"]}
        try:
            outcome = self._process(event, stop or threading.Event())
        except Refused as exc:
            self.store.finish(event, "dropped", exc.code)
            WEBHOOKS_PROCESSED.labels(event["provider"], "dropped").inc()
            log.info("webhook event dropped: the connection no longer ingests", extra={**context, "reason": exc.code})
            return True
        except Aborted:
            self.store.retry_later(event, 0, "interrupted by shutdown")
            return True
        except (ProviderError, UpstreamError) as exc:
            self._retry_or_fail(event, context, str(exc))
            return True
        except Exception as exc:
            log.exception("webhook event crashed", extra=context)
            self._retry_or_fail(event, context, f"unexpected error ({type(exc).__name__})")
            return True
        self.store.finish(event, outcome)
        WEBHOOKS_PROCESSED.labels(event["provider"], "done").inc()
        log.info("webhook event processed", extra={**context, "outcome": outcome})
        return True

    def _process(self, event: dict, stop: threading.Event) -> str:
        adapter = self.adapters.get(event["provider"])
        if adapter is None:
            raise Refused(404, "unknown_provider", event["provider"])
        credentials = self.connections.webhook_credentials(event["connection"])
        register_secret(credentials.get("api_key"))
        register_secret(credentials.get("webhook_secret"))
        if credentials.get("provider") != event["provider"]:
            raise Refused(404, "not_found", "the connection is for another provider")
        cancellations, invoices, rejected = [], [], 0
        document = adapter.fetch_invoice(StaticCall(credentials["api_key"], stop), event["invoice_id"])
        if document is GONE:
            cancellations = [{"invoice_platform_id": event["invoice_id"], "at": event["event_created_at"]}]
        else:
            invoices, rejected = map_documents(adapter, [document], connection_id=event["connection"],
                                               source="webhook")
        counts = {"created": 0, "updated": 0, "unchanged": 0, "cancelled": 0}
        if invoices or cancellations:
            counts = self.invoices.store_batch(event["connection"], None, invoices, cancellations)
            count_outcomes(event["provider"], "webhook", counts)
        try:
            self.connections.webhook_result(event["connection"], {**counts, "rejected": rejected})
        except (Refused, UpstreamError) as exc:
            log.warning("could not report webhook counts", extra={"connection": event["connection"],
                                                                  "error": str(exc)})
        if rejected:
            return "rejected"
        for name in ("created", "updated", "cancelled", "unchanged"):
            if counts.get(name):
                return name
        return "not_found"

    def _retry_or_fail(self, event: dict, context: dict, detail: str) -> None:
        if event["attempts"] >= self.max_attempts:
            self.store.fail(event, detail)
            WEBHOOKS_PROCESSED.labels(event["provider"], "failed").inc()
            log.error("webhook event failed for good; polling will bring the change", extra={**context,
                                                                                          "error": detail})
            return
        delay = backoff_delay(event["attempts"], base=BACKOFF_BASE_SECONDS, cap=self.backoff_cap)
        self.store.retry_later(event, delay, detail)
        WEBHOOKS_PROCESSED.labels(event["provider"], "retry").inc()
        log.warning("webhook event will be retried", extra={**context, "error": detail,
                                                            "retry_in_seconds": round(delay, 2)})
