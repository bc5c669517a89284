"""The worker's Prometheus metrics (poller and webhook receiver)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PAGES_FETCHED = Counter("ingest_pages_fetched_total", "Pages of changes read from a provider", ["provider"])
INVOICES = Counter(
    "ingest_invoices_total",
    "Invoices handed to invoices-service, by outcome (created, updated, unchanged, cancelled, rejected)",
    ["provider", "source", "outcome"],
)
PROVIDER_ERRORS = Counter(
    "ingest_provider_errors_total",
    "Failed provider requests by kind (bad_credentials, throttled, server_error, timeout, connection, "
    "malformed, client_error)",
    ["provider", "kind"],
)
POLL_DURATION = Histogram(
    "ingest_poll_duration_seconds", "Duration of one poll of one connection", ["provider", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
POLLS = Counter("ingest_polls_total", "Polls of a connection by outcome", ["provider", "outcome"])
WEBHOOKS_RECEIVED = Counter(
    "ingest_webhooks_received_total",
    "Webhook deliveries by answer (accepted, duplicate, or the refusal code)",
    ["provider", "outcome"],
)
WEBHOOKS_PROCESSED = Counter(
    "ingest_webhooks_processed_total",
    "Accepted webhook events by processing outcome (done, dropped, retry, failed)",
    ["provider", "outcome"],
)


def count_outcomes(provider: str, source: str, counts: dict) -> None:
    for outcome in ("created", "updated", "unchanged", "cancelled"):
        if counts.get(outcome):
            INVOICES.labels(provider, source, outcome).inc(counts[outcome])
