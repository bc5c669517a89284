"""What every provider adapter offers the poller and the webhook receiver.

An adapter lists a connection's changes since a checkpoint (page by page, so an
initial sync of any size runs in constant memory), fetches one invoice and maps a
provider document to the canonical invoice. The checkpoint is the adapter's own
JSON object: the services store it without reading it. An adapter reads its own
settings (base URL...) from the environment. A provider that sends webhooks has a
`WebhookAdapter`, which verifies a signed delivery and turns the provider's event
into a provider-neutral `WebhookEvent`: the generic code never sees an event name.

Every provider request goes through a `CallContext`: the poller's renews the
connection's lease first (and so stops at once when the connection was
deactivated) and hands over the current API key; its `wait` sleeps between
retries and may abort them.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Iterator, Mapping
from typing import Protocol


class ProviderError(Exception):
    """A provider call failed; `kind` is the poll-result error kind of docs/internal-api.md."""

    kind = "provider_error"
    metric = "client_error"  # the provider_errors metric's label

    def __init__(self, message: str, *, retry_after_seconds: int | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class BadCredentials(ProviderError):
    kind = metric = "bad_credentials"


class Throttled(ProviderError):
    kind = "throttled"


class ProviderUnavailable(ProviderError):
    """Server errors, time-outs or malformed answers that outlasted every retry."""

    kind = "provider_error"


class WebhookRejected(Exception):
    """A webhook that must be refused; `status` and `code` become the HTTP answer."""

    status = 400
    code = "invalid_event"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details


class SignatureRejected(WebhookRejected):
    status = 401
    code = "invalid_signature"


class MalformedEvent(WebhookRejected):
    status = 400
    code = "invalid_event"


class CallContext(Protocol):
    def before_call(self) -> str:
        """Called before every provider request; returns the API key to send (or raises to stop)."""

    def wait(self, seconds: float) -> None:
        """Sleep between two attempts (or raise to stop)."""


class Aborted(Exception):
    """The caller asked to stop (shutdown) while a provider call was waiting to retry."""


class StaticCall:
    """A `CallContext` with a fixed key; `wait` ends early (raising `Aborted`) when `stop` is set."""

    def __init__(self, api_key: str, stop: threading.Event | None = None):
        self.api_key = api_key
        self.stop = stop or threading.Event()

    def before_call(self) -> str:
        if self.stop.is_set():
            raise Aborted("stopping")
        return self.api_key

    def wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Aborted("stopping")


@dataclasses.dataclass(frozen=True)
class ChangesPage:
    """One page of changes, and the checkpoint to store once they are stored.

    `gone` names documents the provider no longer has (deleted): they are cancelled.
    A page of a full listing (everything the provider holds, from the start) names it
    in `listing`, an id the adapter keeps in its checkpoint so a resumed listing keeps
    it; the page with `listing_complete` ends it, and the connection's invoices it did
    not list are then cancelled.
    """

    documents: list[dict]
    checkpoint: dict
    last: bool
    gone: tuple[str, ...] = ()
    listing: str | None = None
    listing_complete: bool = False


class InvoiceGone:
    """`fetch_invoice`'s answer for a document the provider no longer has (404)."""


GONE = InvoiceGone()


@dataclasses.dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery, as a decision: refresh `invoice_id` from the provider, or nothing.

    An event is only a notification: whatever it says happened (created, changed, deleted), what
    the invoice becomes always comes from the provider (a fetch; a 404 cancels it)."""

    id: str
    type: str  # the provider's own name for the event, for logs only
    created_at: str  # ISO-8601 UTC with milliseconds
    invoice_id: str | None  # the invoice to refresh; None: nothing for us (acknowledged, ignored)


class ProviderAdapter(abc.ABC):
    key: str

    @classmethod
    @abc.abstractmethod
    def load_settings(cls, env: Mapping[str, str]) -> object:
        """The adapter's own settings, read from the environment (a bad value raises ConfigError)."""

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings) -> ProviderAdapter:
        """The adapter for the worker's settings; its own are `settings.providers[cls.key]`."""

    @abc.abstractmethod
    def list_changes(self, call: CallContext, checkpoint: dict | None, page_size: int) -> Iterator[ChangesPage]:
        """The documents changed since `checkpoint` (None: everything), one page at a time, oldest first."""

    @abc.abstractmethod
    def fetch_invoice(self, call: CallContext, invoice_id: str) -> dict | InvoiceGone:
        """One provider document, or `GONE`."""

    @abc.abstractmethod
    def to_canonical(self, document: dict) -> dict:
        """The canonical invoice for a provider document; `canonical.InvalidInvoice` otherwise."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release pooled connections."""


class WebhookAdapter(ProviderAdapter):
    """An adapter whose provider signs and sends webhooks (the catalogue says `supports_webhooks`)."""

    # How the receiver's OpenAPI document describes this provider's deliveries.
    signature_header: str
    signature_description: str
    event_schema: type

    @abc.abstractmethod
    def check_signature_header(self, headers: Mapping[str, str]) -> None:
        """`SignatureRejected` when the delivery carries no well-formed signature (no secret needed)."""

    @abc.abstractmethod
    def verify_webhook(self, secret: str, headers: Mapping[str, str], body: bytes,
                       now: float | None = None) -> WebhookEvent:
        """The event a signed delivery carries; `SignatureRejected` or `MalformedEvent` otherwise."""
