"""The webhook receiver app: `gunicorn ... 'ingest_worker.webhooks.app:create_app()'` (make run-webhooks).

Each gunicorn worker also runs an event processor thread (unless
WEBHOOK_PROCESSOR_IN_RECEIVER=0), woken as soon as it accepts an event, so a
webhook's invoice is published within moments of the 202.
"""

from __future__ import annotations

import threading

from bobdesk_shared.mongo import ping
from bobdesk_shared.startup import ensure_indexes_or_defer, start
from bobdesk_shared.web import create_app as create_web_app

from ..config import Settings, load_settings
from ..providers import build_adapters, webhook_adapters
from ..upstream import build_clients
from .events import EventStore
from .processor import EventProcessor
from .services import Receiver
from .views import blp

SERVICE_NAME = "ingest-webhooks"
MAX_BODY_BYTES = 64 << 10  # events are a few hundred bytes


def create_app(settings: Settings | None = None):
    settings = settings or load_settings(service_name=SERVICE_NAME)
    mongo = start(settings)
    store = EventStore(mongo[settings.ingest_db], settings.webhook_event_retention_seconds)
    ensure_indexes_or_defer(store.ensure_indexes, "INGEST_DB")
    connections, invoices = build_clients(settings)
    adapters = build_adapters(settings)
    processor = EventProcessor(store, connections, invoices, adapters, owner=f"{settings.worker_id}:webhooks",
                               max_attempts=settings.webhook_max_attempts,
                               backoff_cap=settings.poll_interval_seconds)
    receiver = Receiver(webhook_adapters(adapters), connections, store, on_accept=processor.wake.set)
    app, _ = create_web_app(
        settings, import_name=__name__,
        title="Bob! Desk webhook receiver", blueprints=[blp], max_body_bytes=MAX_BODY_BYTES,
        description="Receives providers' signed webhooks and queues them for ingestion.",
        ready_checks={"ingest_db": lambda: ping(mongo), "connections_service": connections.healthy,
                      "invoices_service": invoices.healthy},
    )
    app.extensions["webhook_receiver"] = receiver
    app.extensions["webhook_processor"] = processor
    app.extensions["webhook_processor_stop"] = stop = threading.Event()
    if settings.process_webhooks_in_receiver:
        processor.start_thread(stop)
    return app
