"""Receiving one webhook delivery: the use case behind POST /webhooks/{provider}/{connectionId}.

Order matters: the provider and connection are checked first (their webhook
secret is needed), then the signature over the raw body, and only then is the
body read as an event. The event is recorded durably before the 202, so an
acknowledged event cannot be lost; a repeated event id is acknowledged and
changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from bobdesk_shared.errors import ApiError, BadRequest, Conflict, NotFound, ServiceUnavailable, Unauthorized
from bobdesk_shared.logs import register_secret
from bobdesk_shared.timeutil import parse_object_id
from pymongo.errors import PyMongoError

from ..metrics import WEBHOOKS_RECEIVED
from ..providers.base import ProviderAdapter, WebhookRejected
from ..upstream import ConnectionsApi, Refused, UpstreamError
from .events import EventStore

log = logging.getLogger(__name__)

HANDLED_TYPES = frozenset({"invoice.created", "invoice.updated", "invoice.deleted"})


@dataclasses.dataclass(frozen=True)
class Receipt:
    status: int
    body: dict


@dataclasses.dataclass
class Receiver:
    adapters: dict[str, ProviderAdapter]
    connections: ConnectionsApi
    store: EventStore
    on_accept: Callable[[], None] = lambda: None

    def receive(self, provider: str, connection_id: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        try:
            receipt = self._receive(provider, connection_id, headers, body)
        except ApiError as exc:
            WEBHOOKS_RECEIVED.labels(self._label(provider), exc.code).inc()
            log.info("webhook refused", extra={"provider": provider, "connection": connection_id, "code": exc.code})
            raise
        WEBHOOKS_RECEIVED.labels(provider, receipt.body["status"]).inc()
        return receipt

    def _label(self, provider: str) -> str:
        return provider if provider in self.adapters else "unknown"

    def _receive(self, provider: str, connection_id: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        adapter = self.adapters.get(provider)
        if adapter is None:
            raise NotFound(f"Unknown provider '{provider[:40]}'.", code="unknown_provider")
        if parse_object_id(connection_id) is None:
            raise NotFound("Unknown connection.")
        credentials = self._credentials(connection_id)
        if credentials.get("provider") != provider:
            raise NotFound("Unknown connection.")
        secret = credentials.get("webhook_secret")
        if not secret:
            raise Conflict("The connection has no webhook secret.", code="no_webhook_secret")
        register_secret(secret)
        register_secret(credentials.get("api_key"))
        try:
            event = adapter.verify_webhook(secret, headers, body, time.time())
        except WebhookRejected as exc:
            refusal = Unauthorized if exc.status == 401 else BadRequest
            raise refusal(exc.message, code=exc.code, details=exc.details) from None
        context = {"provider": provider, "connection": connection_id, "event_id": event.id, "type": event.type}
        if event.type not in HANDLED_TYPES:
            log.info("webhook event type ignored", extra=context)
            return Receipt(200, {"status": "ignored", "event_id": event.id})
        try:
            recorded = self.store.record(provider, connection_id, event)
        except PyMongoError:
            log.exception("could not record a webhook event", extra=context)
            raise ServiceUnavailable("The event could not be recorded; retry later.") from None
        if not recorded:
            log.info("webhook event replayed; acknowledged, nothing changed", extra=context)
            return Receipt(200, {"status": "duplicate", "event_id": event.id})
        log.info("webhook event accepted", extra=context)
        self.on_accept()
        return Receipt(202, {"status": "accepted", "event_id": event.id})

    def _credentials(self, connection_id: str) -> dict:
        try:
            return self.connections.webhook_credentials(connection_id)
        except Refused as exc:
            if exc.status == 404:
                raise NotFound("Unknown connection.") from None
            messages = {"connection_inactive": "The connection is inactive.",
                        "no_webhook_secret": "The connection has no webhook secret."}
            raise Conflict(messages.get(exc.code, "The connection cannot receive webhooks."),
                           code=exc.code if exc.code in messages else "conflict") from None
        except UpstreamError:
            raise ServiceUnavailable("Connections are unavailable; retry later.") from None
