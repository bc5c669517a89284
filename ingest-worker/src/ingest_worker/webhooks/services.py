"""Receiving one webhook delivery: the use case behind POST /webhooks/{provider}/{connectionId}.

Order matters: a provider that sends no webhooks is 404; then the signature
header's form, then the connection's webhook secret, the signature over the raw
body, and only then is the body read as an event. A delivery that cannot be
verified is 401, the same answer whatever the connection's state (unknown,
malformed id, another provider's, inactive, deleted, no secret): it is checked
against a random secret, so the caller never learns which. The event is recorded
durably before the 202, so an acknowledged event cannot be lost; a repeated event
id is acknowledged and changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping

from bobdesk_shared.errors import ApiError, BadRequest, NotFound, ServiceUnavailable, Unauthorized
from bobdesk_shared.logs import register_secret
from bobdesk_shared.timeutil import parse_object_id
from pymongo.errors import PyMongoError

from ..metrics import WEBHOOKS_RECEIVED
from ..providers.base import WebhookAdapter, WebhookRejected
from ..upstream import ConnectionsApi, Refused, UpstreamError
from .events import EventStore

log = logging.getLogger(__name__)

# What an unusable connection's deliveries are checked against: no signature can match it.
_UNMATCHABLE_SECRET = secrets.token_hex(32)


@dataclasses.dataclass(frozen=True)
class Receipt:
    status: int
    body: dict


@dataclasses.dataclass
class Receiver:
    adapters: dict[str, WebhookAdapter]  # the providers that send webhooks (providers.webhook_adapters)
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
            raise NotFound("No provider sends webhooks under this name.", code="unknown_provider")
        try:
            adapter.check_signature_header(headers)
            secret = self._webhook_secret(provider, connection_id)
            event = adapter.verify_webhook(secret or _UNMATCHABLE_SECRET, headers, body, time.time())
        except WebhookRejected as exc:
            refusal = Unauthorized if exc.status == 401 else BadRequest
            raise refusal(exc.message, code=exc.code, details=exc.details) from None
        context = {"provider": provider, "connection": connection_id, "event_id": event.id, "type": event.type}
        if event.invoice_id is None:
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

    def _webhook_secret(self, provider: str, connection_id: str) -> str | None:
        """The connection's webhook secret; None when it cannot take this provider's deliveries."""
        if parse_object_id(connection_id) is None:
            return None
        try:
            credentials = self.connections.webhook_credentials(connection_id)
        except Refused as exc:
            log.info("webhook for a connection that takes none", extra={
                "provider": provider, "connection": connection_id, "reason": exc.code})
            return None
        except UpstreamError:
            raise ServiceUnavailable("Connections are unavailable; retry later.") from None
        register_secret(credentials.get("webhook_secret"))
        register_secret(credentials.get("api_key"))
        if credentials.get("provider") != provider:
            return None
        return credentials.get("webhook_secret") or None
