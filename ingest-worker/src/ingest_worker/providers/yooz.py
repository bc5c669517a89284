"""The Yooz adapter: everything the platform knows about Yooz's API, and nothing else does.

Settings: `YOOZ_BASE_URL` (unset: the simulator on `YOOZ_SIM_PORT`).

Listing: `GET /invoices?updated_since&cursor&limit`, items ordered by
`(updated_at, id)` ascending, `updated_since` inclusive. The checkpoint is
`{"updated_since": <highest updated_at stored, to the microsecond>, "cursor": <next page> | null}`:
resuming from it re-reads at most the documents sharing that last timestamp
(ingestion is idempotent), and if Yooz refuses an old cursor the adapter falls
back to `updated_since` alone. Requests carrying a cursor also carry the
high-water mark: every document after the cursor is at or above it.

Webhooks: `Yooz-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of
`"<t>." + raw body` under the connection's webhook secret, within 300 s. Events
`{"id", "type", "created_at", "data": {"invoice_id"}}`: `invoice.created`,
`invoice.updated` and `invoice.deleted` all mean "refresh this invoice" (a deletion is
believed only once Yooz answers 404 or a `deleted` status); other types are ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator, Mapping
from urllib.parse import quote

import marshmallow as ma
from bobdesk_shared import config, untrusted_json
from bobdesk_shared.timeutil import iso_ms, parse_iso

from .. import canonical
from ..canonical import InvalidInvoice
from ..metrics import PROVIDER_ERRORS
from .base import (
    GONE,
    BadCredentials,
    CallContext,
    ChangesPage,
    InvoiceGone,
    MalformedEvent,
    ProviderError,
    SignatureRejected,
    WebhookAdapter,
    WebhookEvent,
)
from .http import ProviderHttp, RetryPolicy, Transient, json_answer, retry_after_seconds

log = logging.getLogger(__name__)

KEY = "yooz"
SIGNATURE_HEADER = "Yooz-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
STATUSES = frozenset({"to_validate", "validated", "paid", "rejected", "deleted"})
CANCELLED_STATUSES = frozenset({"rejected", "deleted"})
EVENT_TYPES = frozenset({"invoice.created", "invoice.updated", "invoice.deleted"})
EPOCH = "1970-01-01T00:00:00.000000Z"
# One answer for every signature that does not verify, whatever the connection's state.
UNVERIFIED = "No signature matches the connection's webhook secret."
_MAX_SIGNATURE_HEADER = 2048
_MAX_SIGNATURES = 8


class _CursorRefused(Exception):
    """Yooz answered 400 to a request carrying a cursor (expired or foreign)."""




def _common_errors(status: int, headers: Mapping[str, str]) -> None:
    if status == 401:
        raise BadCredentials("Yooz refused the API key (401)")
    if status == 429:
        raise Transient("throttled", "Yooz throttled the request (429)", wait=retry_after_seconds(headers))
    if status >= 500:
        raise Transient("server_error", f"Yooz answered HTTP {status}")


def _interpret_page(status: int, body: bytes, headers: Mapping[str, str]) -> tuple[list, str | None]:
    _common_errors(status, headers)
    if status == 400:
        raise _CursorRefused()
    if status != 200:
        raise ProviderError(f"Yooz answered HTTP {status} to a listing")
    page = json_answer(body)
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise Transient("malformed", "the listing has no 'items' list")
    next_cursor = page.get("next_cursor")
    if next_cursor is not None and (not isinstance(next_cursor, str) or not next_cursor):
        raise Transient("malformed", "the listing's 'next_cursor' is not a string")
    return page["items"], next_cursor


def _interpret_invoice(status: int, body: bytes, headers: Mapping[str, str]) -> dict | InvoiceGone:
    _common_errors(status, headers)
    if status == 404:
        return GONE
    if status != 200:
        raise ProviderError(f"Yooz answered HTTP {status} to an invoice fetch")
    document = json_answer(body)
    if not isinstance(document, dict):
        raise Transient("malformed", "the invoice is not a JSON object")
    return document


def _iso_us(moment: dt.datetime) -> str:
    """Full precision: truncating the mark would re-read every document of its last millisecond."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _updated_at(document: object) -> dt.datetime | None:
    if isinstance(document, dict):
        try:
            return parse_iso(document.get("updated_at"))
        except (ValueError, TypeError):
            return None
    return None


class YoozSettings(config.EnvSettings):
    yooz_sim_port: config.Port = 8090
    yooz_base_url: str | None = None

    @property
    def base_url(self) -> str:
        """YOOZ_BASE_URL, or the simulator on YOOZ_SIM_PORT."""
        return (self.yooz_base_url or f"http://127.0.0.1:{self.yooz_sim_port}").rstrip("/")


def _event_text(value) -> bool:
    return 0 < len(value) <= 200 and value.isprintable()


def _identifier(value: str) -> None:
    if not _event_text(value):
        raise ma.ValidationError("Not 1 to 200 printable characters.")


class YoozEventSchema(ma.Schema):
    """A Yooz event; fields beyond these are Yooz's business and ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    id = ma.fields.String(required=True, validate=_identifier, metadata={"example": "evt_01HZX"})
    type = ma.fields.String(required=True, validate=_identifier, metadata={"example": "invoice.created"})
    created_at = ma.fields.String(required=True, metadata={"example": "2024-03-12T08:00:00Z"})
    data = ma.fields.Dict(load_default=None, allow_none=True,
                          metadata={"example": {"invoice_id": "YZ-2024-00871"}})

    @ma.validates("created_at")
    def _is_a_time(self, value, **kwargs):
        try:
            parse_iso(value)
        except (ValueError, TypeError, OverflowError):
            raise ma.ValidationError("Not an ISO-8601 time with a time zone.") from None

    @ma.validates_schema
    def _names_its_invoice(self, event, **kwargs):
        if event.get("type") not in EVENT_TYPES:
            return
        invoice_id = (event.get("data") or {}).get("invoice_id")
        if not isinstance(invoice_id, str) or not _event_text(invoice_id):
            raise ma.ValidationError("Missing or not an invoice id.", "data.invoice_id")


_EVENT_SCHEMA = YoozEventSchema()


class YoozAdapter(WebhookAdapter):
    key = KEY
    signature_header = SIGNATURE_HEADER
    signature_description = ("Yooz: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + raw body under the "
                             "connection's webhook secret>[,v1=...]; within 300 s.")
    event_schema = YoozEventSchema

    def __init__(self, base_url: str, http: ProviderHttp):
        self.base_url = base_url.rstrip("/")
        self.http = http

    @classmethod
    def load_settings(cls, env) -> YoozSettings:
        return config.read(YoozSettings, env)

    @classmethod
    def from_settings(cls, settings) -> YoozAdapter:
        policy = RetryPolicy(
            max_attempts=settings.provider_max_attempts,
            backoff_base=settings.provider_backoff_base,
            backoff_cap=settings.provider_backoff_cap,
            max_retry_after=settings.provider_max_retry_after,
        )
        http = ProviderHttp(KEY, timeout=(settings.provider_connect_timeout, settings.provider_read_timeout),
                            policy=policy, pool_size=settings.concurrency + 4)
        return cls(settings.providers[KEY].base_url, http)

    @staticmethod
    def _headers(api_key: str) -> dict:
        return {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    # --- polling -------------------------------------------------------------

    def list_changes(self, call: CallContext, checkpoint: dict | None, page_size: int) -> Iterator[ChangesPage]:
        high_water, cursor = self._read_checkpoint(checkpoint)
        # From the beginning, the listing is a full one (named by its start), resumed under the same name.
        listing = checkpoint.get("listing") if isinstance(checkpoint, dict) else None
        listing = listing if isinstance(listing, str) and listing else None
        if high_water is None and listing is None:
            listing = _iso_us(dt.datetime.now(dt.UTC))
        while True:
            params = {"updated_since": _iso_us(high_water) if high_water else EPOCH, "limit": page_size}
            if cursor:
                params["cursor"] = cursor
            try:
                documents, next_cursor = self.http.get(call, f"{self.base_url}/invoices", params=params,
                                                       headers=self._headers, interpret=_interpret_page)
            except _CursorRefused:
                if not cursor:
                    PROVIDER_ERRORS.labels(KEY, "client_error").inc()
                    raise ProviderError("Yooz refused the listing request (400)") from None
                log.warning("Yooz refused a stored cursor; resuming from updated_since")
                cursor = None
                continue
            # A document dated in the future (bad provider data) must not push the mark past changes still
            # to come: the mark never passes our own clock, and such a document is simply read again.
            ceiling = dt.datetime.now(dt.UTC)
            for document in documents:
                updated = _updated_at(document)
                if updated is not None:
                    updated = min(updated, ceiling)
                    if high_water is None or updated > high_water:
                        high_water = updated
            checkpoint = {"updated_since": _iso_us(high_water) if high_water else None, "cursor": next_cursor,
                          **({"listing": listing} if listing and next_cursor else {})}
            yield ChangesPage(documents=documents, checkpoint=checkpoint, last=next_cursor is None, listing=listing,
                              listing_complete=bool(listing) and next_cursor is None)
            if next_cursor is None:
                return
            cursor = next_cursor

    @staticmethod
    def _read_checkpoint(checkpoint: dict | None) -> tuple[dt.datetime | None, str | None]:
        """Our own earlier checkpoint; anything unreadable restarts from the beginning (idempotent)."""
        if not isinstance(checkpoint, dict):
            return None, None
        try:
            since = parse_iso(checkpoint["updated_since"]) if checkpoint.get("updated_since") else None
        except (ValueError, TypeError):
            log.warning("unreadable Yooz checkpoint; listing from the beginning")
            return None, None
        if since is not None:
            since = min(since, dt.datetime.now(dt.UTC))
        cursor = checkpoint.get("cursor")
        return since, cursor if isinstance(cursor, str) and cursor else None

    def fetch_invoice(self, call: CallContext, invoice_id: str) -> dict | InvoiceGone:
        url = f"{self.base_url}/invoices/{quote(invoice_id, safe='')}"
        return self.http.get(call, url, params=None, headers=self._headers, interpret=_interpret_invoice)

    # --- mapping -------------------------------------------------------------

    def to_canonical(self, document: dict) -> dict:
        if not isinstance(document, dict):
            raise InvalidInvoice("the document is not a JSON object")
        raw_id = document.get("id")
        status = document.get("status")
        supplier = document.get("supplier")
        if status not in STATUSES:
            raise InvalidInvoice("status is not one of " + ", ".join(sorted(STATUSES)),
                                 raw_id if isinstance(raw_id, str) else None)
        if not isinstance(supplier, dict):
            raise InvalidInvoice("supplier must be an object", raw_id if isinstance(raw_id, str) else None)
        return canonical.validate({
            "invoice_platform_id": canonical.text(raw_id),
            "number": canonical.text(document.get("number")),
            "issue_date": document.get("issue_date"),
            "due_date": document.get("due_date"),
            "currency": canonical.currency(document.get("currency")),
            "amounts": {
                "ht": canonical.decimal_string(document.get("total_excl_tax")),
                "tva": canonical.decimal_string(document.get("total_tax")),
                "ttc": canonical.decimal_string(document.get("total_incl_tax")),
            },
            "vat_lines": self._rows(document.get("vat_lines"), self._vat_line),
            "lines": self._rows(document.get("lines"), self._line),
            "supplier": {
                "platform_id": canonical.text(supplier.get("id")),
                "name": canonical.text(supplier.get("name")),
                "siret": canonical.siret(supplier.get("siret")),
                "iban": canonical.iban(supplier.get("iban")),
            },
            "order_reference": canonical.text(document.get("order_reference")),
            "provider_status": status,
            "cancelled": status in CANCELLED_STATUSES,
            "provider_created_at": canonical.timestamp(document.get("created_at")),
            "provider_updated_at": canonical.timestamp(document.get("updated_at")),
            "raw": canonical.plain_json(document),
        })

    @staticmethod
    def _rows(rows: object, mapper) -> object:
        """Each object row mapped; anything else left for the canonical gate to refuse."""
        if not isinstance(rows, list):
            return rows
        return [mapper(row) if isinstance(row, dict) else row for row in rows]

    @staticmethod
    def _vat_line(row: dict) -> dict:
        return {name: canonical.decimal_string(row.get(name)) for name in ("rate", "base", "amount")}

    @staticmethod
    def _line(row: dict) -> dict:
        return {
            "label": canonical.text(row.get("label")),
            **{name: canonical.decimal_string(row.get(name)) for name in ("quantity", "unit_price", "total_excl_tax")},
        }

    # --- webhooks ------------------------------------------------------------

    def check_signature_header(self, headers: Mapping[str, str]) -> None:
        self._parse_signature_header(headers.get(SIGNATURE_HEADER))

    def verify_webhook(self, secret: str, headers: Mapping[str, str], body: bytes,
                       now: float | None = None) -> WebhookEvent:
        timestamp, signatures = self._parse_signature_header(headers.get(SIGNATURE_HEADER))
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        # Every candidate is compared (constant time each), whichever matches.
        matched = False
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureRejected(UNVERIFIED)
        now = time.time() if now is None else now
        if abs(now - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
            raise SignatureRejected("The signature's timestamp is outside the 300 s tolerance.",
                                    code="stale_signature")
        return self._parse_event(body)

    @staticmethod
    def _parse_signature_header(header: str | None) -> tuple[int, list[str]]:
        if not header or not header.strip():
            raise SignatureRejected(f"The {SIGNATURE_HEADER} header is missing.", code="missing_signature")
        if len(header) > _MAX_SIGNATURE_HEADER:
            raise SignatureRejected(f"The {SIGNATURE_HEADER} header is too long.")
        timestamps, signatures = [], []
        for part in header.split(","):
            name, _, value = part.strip().partition("=")
            if name == "t":
                timestamps.append(value)
            elif name == "v1":
                signatures.append(value.lower())
        if len(timestamps) != 1 or not timestamps[0].isdigit() or len(timestamps[0]) > 12:
            raise SignatureRejected(f"The {SIGNATURE_HEADER} header needs one t=<unix seconds>.")
        signatures = [s for s in signatures if len(s) == 64 and all(c in "0123456789abcdef" for c in s)]
        if not signatures or len(signatures) > _MAX_SIGNATURES:
            raise SignatureRejected(f"The {SIGNATURE_HEADER} header needs between 1 and {_MAX_SIGNATURES} v1= "
                                    "signatures.")
        return int(timestamps[0]), signatures

    @staticmethod
    def _parse_event(body: bytes) -> WebhookEvent:
        """The event's shape is checked before anything reads it: every field is untrusted."""
        try:
            event = untrusted_json.loads(body)
        except ValueError:
            raise MalformedEvent("The body is not JSON.", code="malformed_json") from None
        if not isinstance(event, dict):
            raise MalformedEvent("The event must be a JSON object.")
        try:
            event = _EVENT_SCHEMA.load(event)
        except ma.ValidationError as exc:
            raise MalformedEvent("The event has missing or invalid fields.", code="validation_error",
                                 details=exc.messages) from None
        refresh = event["type"] in EVENT_TYPES
        return WebhookEvent(id=event["id"], type=event["type"], created_at=iso_ms(parse_iso(event["created_at"])),
                            invoice_id=event["data"]["invoice_id"] if refresh else None)

    def close(self) -> None:
        self.http.close()
