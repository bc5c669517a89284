"""`gunicorn -c python:bobdesk_shared.gunicorn_conf 'connections_service.app:create_app()'` (make run-connections)."""

from __future__ import annotations

from bobdesk_shared.crypto import KeyRing
from bobdesk_shared.mongo import ping
from bobdesk_shared.startup import ensure_indexes_or_defer, start
from bobdesk_shared.web import create_app as create_web_app

from .api import connections, internal
from .config import Settings, load_settings
from .repository import ConnectionRepository
from .services import ConnectionService, SecretBox, WorkerService

SERVICE_NAME = Settings.SERVICE_NAME
MAX_BODY_BYTES = 64 << 10  # secrets are at most 4 KiB; a checkpoint is small

DESCRIPTION = """A company's connections to its accounts-payable providers.

`/invoice-connections`: jarvis users with the `accounting` permission (cookie `session` or Bearer),
scoped to the token's company. `apiKey` and `webhookSecret` are write-only: stored encrypted
(XChaCha20-Poly1305, bound to the connection and field), never returned, logged or measured.

Dates are ISO-8601 UTC with milliseconds."""


def create_app(settings: Settings | None = None):
    settings = settings or load_settings()
    mongo = start(settings)
    repository = ConnectionRepository(mongo[settings.connections_db])
    ensure_indexes_or_defer(repository.ensure_indexes, "CONNECTIONS_DB")
    box = SecretBox(KeyRing.parse(settings.credentials_keys))
    app, _ = create_web_app(
        settings, import_name=__name__,
        title="Bob! Desk invoice connections", description=DESCRIPTION, max_body_bytes=MAX_BODY_BYTES,
        blueprints=[connections.blp], internal_blueprints=[internal.blp],
        ready_checks={"connections_db": lambda: ping(mongo)},
    )
    app.extensions["connection_service"] = ConnectionService(repository, box)
    app.extensions["worker_service"] = WorkerService(repository, box, settings.poll_interval_seconds)
    return app
