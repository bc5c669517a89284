"""Entry point of the poller process (see the package docstring)."""

from __future__ import annotations

import os

# A single process: never prometheus-client's multiprocess mode, even when the
# environment carries a directory meant for gunicorn.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import gc
import logging
import signal
import threading

from bobdesk_shared.mongo import ping
from bobdesk_shared.startup import start
from bobdesk_shared.web import create_app
from werkzeug.serving import make_server

from ..config import Settings, load_settings
from ..providers import build_adapters
from ..upstream import build_clients
from ..webhooks.events import EventStore
from ..webhooks.processor import EventProcessor
from .polling import Poll
from .runner import ClaimLoop

SERVICE_NAME = "ingest-poller"
log = logging.getLogger("ingest_worker.poller")


def serve_operations(settings: Settings, mongo, connections, invoices):
    """/healthz, /readyz (INGEST_DB and both services reachable), /metrics, on a daemon thread."""
    app, _ = create_app(settings, import_name=__name__, title="Bob! Desk poller", blueprints=[],
                        ready_checks={"ingest_db": lambda: ping(mongo), "connections_service": connections.healthy,
                                      "invoices_service": invoices.healthy})
    server = make_server(settings.bind_host, settings.metrics_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="operations",
                     daemon=True).start()
    return server


def main() -> None:
    settings = load_settings(service_name=SERVICE_NAME)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    mongo = start(settings)
    connections, invoices = build_clients(settings, pool_size=settings.concurrency * settings.batches_in_flight + 4)
    adapters = build_adapters(settings)
    operations = serve_operations(settings, mongo, connections, invoices)
    processor_thread = None
    if settings.process_webhooks_in_poller:
        store = EventStore(mongo[settings.ingest_db], settings.webhook_event_retention_seconds)
        processor = EventProcessor(store, connections, invoices, adapters, owner=f"{settings.worker_id}:poller",
                                   max_attempts=settings.webhook_max_attempts,
                                   backoff_cap=settings.poll_interval_seconds)
        processor_thread = processor.start_thread(stop)
    poll = Poll(connections, invoices, adapters, settings.lease_seconds, settings.page_size, stop,
                settings.batch_size, settings.batches_in_flight)
    loop = ClaimLoop(connections, poll, worker_id=settings.worker_id, lease_seconds=settings.lease_seconds,
                     concurrency=settings.concurrency, idle_seconds=settings.idle_claim_seconds, stop=stop)
    gc.freeze()  # what the process holds from its start is never collected: no collection scans it again
    log.info("poller started", extra={"worker": settings.worker_id, "concurrency": settings.concurrency,
                                      "metrics_port": operations.server_port, "page_size": settings.page_size,
                                      "batch_size": settings.batch_size,
                                      "batches_in_flight": settings.batches_in_flight})
    loop.run()
    if processor_thread is not None:
        processor.wake.set()
        processor_thread.join(30)
    operations.shutdown()
    for adapter in adapters.values():
        adapter.close()
    log.info("poller stopped", extra={"worker": settings.worker_id})


if __name__ == "__main__":
    main()
