"""`gunicorn -c python:bobdesk_shared.gunicorn_conf 'connections_service.app:create_app()'` (make run-connections)."""

from __future__ import annotations

import logging

from bobdesk_shared.crypto import KeyRing
from bobdesk_shared.logs import configure_logging
from bobdesk_shared.mongo import connect, ping
from bobdesk_shared.web import create_app as create_web_app
from pymongo.errors import PyMongoError

from .api import connections, internal
from .config import SERVICE_NAME, Settings, load_settings
from .repository import ConnectionRepository
from .services import ConnectionService, SecretBox, WorkerService

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 10  # secrets are at most 4 KiB; a checkpoint is small

DESCRIPTION = """A company's connections to its accounts-payable providers.

`/invoice-connections`: jarvis users with the `accounting` permission (cookie `session` or Bearer),
scoped to the token's company. `apiKey` and `webhookSecret` are write-only: stored encrypted
(XChaCha20-Poly1305, bound to the connection and field), never returned, logged or measured.

Dates are ISO-8601 UTC with milliseconds."""


def create_app(settings: Settings | None = None):
    settings = settings or load_settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    mongo = connect(settings.mongo_uri, SERVICE_NAME)
    repository = ConnectionRepository(mongo[settings.connections_db])
    try:
        repository.ensure_indexes()
    except PyMongoError:
        # Start anyway (/readyz answers 503); the indexes are ensured again at the next start.
        log.warning("CONNECTIONS_DB unreachable at start; indexes not ensured")
    box = SecretBox(KeyRing.parse(settings.credentials_keys))
    app, _ = create_web_app(
        settings, title="Bob! Desk invoice connections", description=DESCRIPTION, max_body_bytes=MAX_BODY_BYTES,
        blueprints=[connections.blp], internal_blueprints=[internal.blp],
        ready_checks={"connections_db": lambda: ping(mongo)},
    )
    app.extensions["connection_service"] = ConnectionService(repository, box)
    app.extensions["worker_service"] = WorkerService(repository, box, settings.poll_interval_seconds)
    return app
