"""The Pennylane adapter: supplier invoices through Pennylane's public API v2, polled (no webhooks).

Sync. A connection's first poll lists every supplier invoice (the backfill, a full
listing: what it does not list is cancelled afterwards), then reads the changelog
from the instant the backfill started. Later polls read the changelog from their
checkpoint; each changelog page's changed invoices are fetched by `id in` filter,
100 at a time, never one call per invoice; a `delete`, or an id the fetch no longer
returns, is gone. A 422 from the changelog (changes are kept 28 days) starts a new
backfill. Each Supplier is fetched once per poll and merged into its invoices.

Checkpoints: `{"phase": "backfill", "started_at", "cursor"}` while listing (the
listing's id is its start instant), then `{"phase": "changelog", "start_date",
"done"}`: `start_date` is inclusive, so the ids already handled at exactly that
instant (`done`) are not fetched again.

Budget: 25 calls per 5 s per token, announced on every answer; `HeaderPacing`
holds a call until the window resets once nothing remains, so a steady sync meets
no 429; a 429's retry-after is honoured, 5xx and time-outs are retried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator, Mapping

from bobdesk_shared import config
from bobdesk_shared.timeutil import parse_iso

from .. import canonical
from ..canonical import InvalidInvoice
from .base import GONE, BadCredentials, CallContext, ChangesPage, InvoiceGone, ProviderAdapter, ProviderError
from .http import ProviderHttp, RetryPolicy, Transient, json_answer, retry_after_seconds
from .pacing import HeaderPacing

log = logging.getLogger(__name__)

KEY = "pennylane"
DEFAULT_SIM_PORT = 8091
API = "/api/external/v2"
FETCH_BATCH = 100  # the most ids one `id in` filter takes
CHANGELOG_PAGE = 1000
MAX_DONE_IDS = 1000
PAYMENT_STATUSES = frozenset({"to_be_processed", "to_be_paid", "partially_paid", "payment_in_progress", "paid",
                              "payment_error"})
OPERATIONS = frozenset({"insert", "update", "delete"})
# The canonical invoice needs a supplier name; Pennylane allows an invoice without a Supplier.
UNKNOWN_SUPPLIER = "Fournisseur inconnu"


class _Expired(Exception):
    """The changelog no longer holds the changes since the checkpoint (422)."""


class _CursorRefused(Exception):
    """A 400 to a request carrying a stored cursor (expired or foreign)."""


def _common_errors(status: int, headers: Mapping[str, str]) -> None:
    if status == 401:
        raise BadCredentials("Pennylane refused the API token (401)")
    if status == 429:
        raise Transient("throttled", "Pennylane throttled the request (429)", wait=retry_after_seconds(headers))
    if status >= 500:
        raise Transient("server_error", f"Pennylane answered HTTP {status}")


def _interpret_list(status: int, body: bytes, headers: Mapping[str, str]) -> tuple[list, str | None]:
    _common_errors(status, headers)
    if status == 422:
        raise _Expired()
    if status == 400:
        raise _CursorRefused()
    if status != 200:
        raise ProviderError(f"Pennylane answered HTTP {status} to a listing")
    page = json_answer(body)
    if not isinstance(page, dict) or not isinstance(page.get("items"), list) \
            or not isinstance(page.get("has_more"), bool):
        raise Transient("malformed", "the list has no 'items' list or no 'has_more' boolean")
    next_cursor = page.get("next_cursor")
    if page["has_more"] and (not isinstance(next_cursor, str) or not next_cursor):
        raise Transient("malformed", "the list has more items but no 'next_cursor'")
    return page["items"], next_cursor if page["has_more"] else None


def _interpret_one(status: int, body: bytes, headers: Mapping[str, str]) -> dict | InvoiceGone:
    _common_errors(status, headers)
    if status == 404:
        return GONE
    if status != 200:
        raise ProviderError(f"Pennylane answered HTTP {status} to a fetch")
    document = json_answer(body)
    if not isinstance(document, dict):
        raise Transient("malformed", "the answer is not a JSON object")
    return document


def _integer_id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _time(value: object) -> dt.datetime | None:
    try:
        return parse_iso(value)
    except (ValueError, TypeError):
        return None


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _siren(value: object) -> str | None:
    """A SIREN (9 digits, spaces tolerated), or None: an unusable one matches nothing, as no SIREN would."""
    digits = value.replace(" ", "") if isinstance(value, str) else ""
    return digits if len(digits) == 9 and digits.isdigit() else None


class PennylaneSettings(config.EnvSettings):
    pennylane_sim_port: config.Port = DEFAULT_SIM_PORT
    pennylane_base_url: str | None = None

    @property
    def base_url(self) -> str:
        """PENNYLANE_BASE_URL, or the simulator on PENNYLANE_SIM_PORT."""
        return (self.pennylane_base_url or f"http://127.0.0.1:{self.pennylane_sim_port}").rstrip("/")


class PennylaneAdapter(ProviderAdapter):
    key = KEY

    def __init__(self, base_url: str, http: ProviderHttp, clock: Callable[[], dt.datetime] | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def load_settings(cls, env: Mapping[str, str]) -> PennylaneSettings:
        return config.read(PennylaneSettings, env)

    @classmethod
    def from_settings(cls, settings) -> PennylaneAdapter:
        policy = RetryPolicy(max_attempts=settings.provider_max_attempts, backoff_base=settings.provider_backoff_base,
                             backoff_cap=settings.provider_backoff_cap,
                             max_retry_after=settings.provider_max_retry_after)
        http = ProviderHttp(KEY, timeout=(settings.provider_connect_timeout, settings.provider_read_timeout),
                            policy=policy, pool_size=settings.concurrency + 4, pacing=HeaderPacing())
        return cls(settings.providers[KEY].base_url, http)

    @staticmethod
    def _headers(api_key: str) -> dict:
        return {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def _get(self, call: CallContext, path: str, params: dict | None, interpret):
        return self.http.get(call, f"{self.base_url}{API}{path}", params=params, headers=self._headers,
                             interpret=interpret)

    # --- polling -------------------------------------------------------------

    def list_changes(self, call: CallContext, checkpoint: dict | None, page_size: int) -> Iterator[ChangesPage]:
        suppliers = _Suppliers(self, call)
        phase = _read_checkpoint(checkpoint, self.clock())
        backfilled = phase[0] == "backfill"
        if backfilled:
            _, started, cursor = phase
            yield from self._backfill(call, suppliers, started, cursor, page_size)
            start, done = started, frozenset()
        else:
            _, start, done = phase
        try:
            yield from self._follow_changelog(call, suppliers, start, done)
        except _Expired:
            if backfilled:
                raise ProviderError("Pennylane's changelog expired right after a backfill") from None
            log.warning("Pennylane's changelog no longer holds the changes since the checkpoint; listing again")
            started = _rfc3339(self.clock())
            yield from self._backfill(call, suppliers, started, None, page_size)
            try:
                yield from self._follow_changelog(call, suppliers, started, frozenset())
            except _Expired:
                raise ProviderError("Pennylane's changelog expired right after a backfill") from None

    def _backfill(self, call: CallContext, suppliers: _Suppliers, started: str, cursor: str | None,
                  page_size: int) -> Iterator[ChangesPage]:
        """Every supplier invoice, by id: a full listing named by its start instant."""
        while True:
            params = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            try:
                items, next_cursor = self._get(call, "/supplier_invoices", params, _interpret_list)
            except _CursorRefused:
                if not cursor:
                    raise ProviderError("Pennylane refused the listing request (400)") from None
                log.warning("Pennylane refused a stored listing cursor; listing from the first page")
                cursor = None
                continue
            except _Expired:
                raise ProviderError("Pennylane answered 422 to a listing") from None
            complete = next_cursor is None
            checkpoint = {"phase": "changelog", "start_date": started, "done": []} if complete else \
                {"phase": "backfill", "started_at": started, "cursor": next_cursor}
            yield ChangesPage(suppliers.attach(items), checkpoint, last=False, listing=started,
                              listing_complete=complete)
            if complete:
                return
            cursor = next_cursor

    def _follow_changelog(self, call: CallContext, suppliers: _Suppliers, start: str,
                          done: frozenset[int]) -> Iterator[ChangesPage]:
        """The changes since `start` (inclusive), each page's changed invoices fetched 100 at a time."""
        start_time, cursor = _time(start), None  # start was checked by _read_checkpoint or is our own
        checkpoint = {"phase": "changelog", "start_date": start, "done": sorted(done)}
        while True:
            params = {"limit": CHANGELOG_PAGE, **({"cursor": cursor} if cursor else {"start_date": start})}
            try:
                events, next_cursor = self._get(call, "/changelogs/supplier_invoices", params, _interpret_list)
            except _CursorRefused:
                raise ProviderError("Pennylane refused the changelog request (400)") from None
            operations, newest = _operations(events, (start, start_time, done) if cursor is None else None)
            deleted = [i for i, operation in operations.items() if operation == "delete"]
            changed = [i for i, operation in operations.items() if operation != "delete"]
            page_checkpoint = checkpoint if newest is None else {
                "phase": "changelog", "start_date": newest[0], "done": newest[1]}
            batches = [changed[i:i + FETCH_BATCH] for i in range(0, len(changed), FETCH_BATCH)] or [[]]
            for index, ids in enumerate(batches):
                documents, missing = self._fetch(call, ids)
                final = index == len(batches) - 1
                gone = (deleted if index == 0 else []) + missing
                yield ChangesPage(suppliers.attach(documents), page_checkpoint if final else checkpoint,
                                  last=final and next_cursor is None, gone=tuple(str(i) for i in gone))
            if next_cursor is None:
                return
            checkpoint, cursor = page_checkpoint, next_cursor

    def _fetch(self, call: CallContext, ids: list[int]) -> tuple[list, list[int]]:
        """The invoices of `ids` (one `id in` request), and the ids Pennylane no longer has."""
        if not ids:
            return [], []
        found, cursor = [], None
        rule = json.dumps([{"field": "id", "operator": "in", "value": ids}])
        while True:
            params = {"filter": rule, "limit": FETCH_BATCH, **({"cursor": cursor} if cursor else {})}
            try:
                items, cursor = self._get(call, "/supplier_invoices", params, _interpret_list)
            except (_CursorRefused, _Expired):
                raise ProviderError("Pennylane refused an id filter") from None
            found += items
            if cursor is None:
                break
        returned = {_integer_id(d.get("id")) for d in found if isinstance(d, dict)}
        return found, [i for i in ids if i not in returned]

    def fetch_invoice(self, call: CallContext, invoice_id: str) -> dict | InvoiceGone:
        if not invoice_id.isdigit():
            return GONE
        document = self._get(call, f"/supplier_invoices/{int(invoice_id)}", None, _interpret_one)
        return document if document is GONE else _Suppliers(self, call).attach([document])[0]

    # --- mapping -------------------------------------------------------------

    def to_canonical(self, document: dict) -> dict:
        if not isinstance(document, dict):
            raise InvalidInvoice("the document is not a JSON object")
        identifier = _integer_id(document.get("id"))
        if identifier is None:
            raise InvalidInvoice("id must be an integer")
        status, supplier = document.get("payment_status"), document.get("supplier")
        if status not in PAYMENT_STATUSES:
            raise InvalidInvoice("payment_status is not one of " + ", ".join(sorted(PAYMENT_STATUSES)),
                                 str(identifier))
        if supplier is None:
            supplier = {}
        if not isinstance(supplier, dict):
            raise InvalidInvoice("supplier must be an object or null", str(identifier))
        siret = canonical.siret(supplier.get("establishment_no"))
        supplier_id = _integer_id(supplier.get("id"))
        return canonical.validate({
            "invoice_platform_id": str(identifier),
            "number": canonical.text(document.get("invoice_number")),
            "issue_date": document.get("date"),
            "due_date": document.get("deadline"),
            "currency": canonical.currency(document.get("currency")),
            "amounts": {
                "ht": canonical.decimal_string(document.get("currency_amount_before_tax")),
                "tva": canonical.decimal_string(document.get("currency_tax")),
                "ttc": canonical.decimal_string(document.get("currency_amount")),
            },
            "vat_lines": None,
            "lines": None,
            "supplier": {
                "platform_id": None if supplier_id is None else str(supplier_id),
                "name": canonical.text(supplier.get("name")) if "name" in supplier else UNKNOWN_SUPPLIER,
                "siret": siret,
                # Matching falls back on the SIREN only when there is no SIRET.
                "siren": _siren(supplier.get("reg_no")) if siret is None else None,
                "iban": canonical.iban(supplier.get("iban")),
            },
            "order_reference": None,  # no purchase-order field: linked to tickets by hand only
            "provider_status": status,
            "cancelled": document.get("archived_at") is not None,
            "provider_created_at": canonical.timestamp(document.get("created_at")),
            "provider_updated_at": canonical.timestamp(document.get("updated_at")),
            "raw": canonical.plain_json(document),
        })

    def close(self) -> None:
        self.http.close()


class _Suppliers:
    """The Suppliers of one poll: each fetched at most once, then merged into the invoices naming it."""

    def __init__(self, adapter: PennylaneAdapter, call: CallContext):
        self.adapter = adapter
        self.call = call
        self.known: dict[int, dict | None] = {}

    def attach(self, invoices: list) -> list:
        for invoice in invoices:
            supplier_id = _integer_id(invoice.get("supplier", {}).get("id")) \
                if isinstance(invoice, dict) and isinstance(invoice.get("supplier"), dict) else None
            if supplier_id is not None and supplier_id not in self.known:
                found = self.adapter._get(self.call, f"/suppliers/{supplier_id}", None, _interpret_one)
                self.known[supplier_id] = None if found is GONE else found
        return [self._merged(invoice) for invoice in invoices]

    def _merged(self, invoice: object) -> object:
        if not isinstance(invoice, dict) or not isinstance(invoice.get("supplier"), dict):
            return invoice
        found = self.known.get(_integer_id(invoice["supplier"].get("id")))
        return {**invoice, "supplier": {**invoice["supplier"], **found}} if found else invoice


def _operations(events: list, resumed: tuple[str, dt.datetime, frozenset[int]] | None,
                ) -> tuple[dict[int, str], tuple[str, list[int]] | None]:
    """The last operation per invoice id (first-seen order), and (newest processed_at, ids handled at it).

    `resumed` is the checkpoint a first page was read from: its events at exactly the
    checkpoint's instant whose ids were already handled are skipped.
    """
    operations: dict[int, str] = {}
    newest: tuple[str, dt.datetime, list[int]] | None = None
    if resumed is not None:
        newest = (resumed[0], resumed[1], sorted(resumed[2]))
    for event in events:
        identifier = _integer_id(event.get("id")) if isinstance(event, dict) else None
        moment = _time(event.get("processed_at")) if identifier is not None else None
        if moment is None or event.get("operation") not in OPERATIONS:
            log.warning("skipping a malformed Pennylane change event")
            continue
        if resumed is not None and moment == resumed[1] and identifier in resumed[2]:
            continue  # handled by the poll that stored this checkpoint
        operations.pop(identifier, None)
        operations[identifier] = event["operation"]
        if newest is None or moment > newest[1]:
            newest = (event["processed_at"], moment, [])
        if moment == newest[1] and identifier not in newest[2] and len(newest[2]) < MAX_DONE_IDS:
            newest[2].append(identifier)
    return operations, None if newest is None else (newest[0], newest[2])


def _read_checkpoint(checkpoint: dict | None, now: dt.datetime) -> tuple:
    """("backfill", started_at, cursor) or ("changelog", start_date, done ids); a new backfill when unreadable."""
    if isinstance(checkpoint, dict):
        phase = checkpoint.get("phase")
        if phase == "backfill" and _time(checkpoint.get("started_at")):
            cursor = checkpoint.get("cursor")
            return "backfill", checkpoint["started_at"], cursor if isinstance(cursor, str) and cursor else None
        if phase == "changelog" and _time(checkpoint.get("start_date")):
            done = checkpoint.get("done") if isinstance(checkpoint.get("done"), list) else []
            return "changelog", checkpoint["start_date"], frozenset(i for i in map(_integer_id, done) if i is not None)
        log.warning("unreadable Pennylane checkpoint; listing everything again")
    return "backfill", _rfc3339(now), None

