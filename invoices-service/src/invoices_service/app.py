"""`gunicorn -c python:bobdesk_shared.gunicorn_conf 'invoices_service.app:create_app()'` (make run-invoices)."""

from __future__ import annotations

from bobdesk_shared.auth import INVOICES_SERVICE, ServiceTokenSource
from bobdesk_shared.mongo import ping
from bobdesk_shared.service_client import ServiceClient
from bobdesk_shared.startup import ensure_indexes_or_defer, start
from bobdesk_shared.web import create_app as create_web_app

from .api import internal, jarvis, public, rate_limit
from .config import Settings, load_settings
from .ingest_authorizer import HttpIngestAuthorizer, IngestAuthorizer
from .repository import InvoiceRepository, PlatformRepository
from .services import InvoiceService

SERVICE_NAME = Settings.SERVICE_NAME
MAX_BODY_BYTES = (5 << 20) + (64 << 10)  # a 5 MiB batch of invoices and its envelope

DESCRIPTION = """Invoices ingested from accounting providers, matched to the company's contractors and tickets.

- `/api/v3.0/invoices`: the public API (Bearer public token, scope `invoices:read`).
- `/invoices`: jarvis (user token with the `accounting` permission), including manual ticket links.

Amounts are exact JSON numbers; dates are ISO-8601 UTC with milliseconds; every error is
`{"error": {"code", "message"}}`."""


def create_app(settings: Settings | None = None, authorizer: IngestAuthorizer | None = None):
    settings = settings or load_settings()
    mongo = start(settings)
    invoices = InvoiceRepository(mongo[settings.invoices_db])
    ensure_indexes_or_defer(invoices.ensure_indexes, "INVOICES_DB")
    if authorizer is None:
        tokens = ServiceTokenSource(settings.service_jwt_secret, INVOICES_SERVICE)
        authorizer = HttpIngestAuthorizer(ServiceClient(settings.connections_url, tokens))
    service = InvoiceService(invoices, PlatformRepository(mongo[settings.platform_db]), authorizer)
    app, _ = create_web_app(
        settings, import_name=__name__,
        title="Bob! Desk invoices", description=DESCRIPTION, max_body_bytes=MAX_BODY_BYTES,
        blueprints=[public.blp, jarvis.blp], internal_blueprints=[internal.blp],
        ready_checks={"invoices_db": lambda: ping(mongo)},
    )
    rate_limit.install(app, public.blp, public.company, settings)
    app.extensions["invoice_service"] = service
    return app
