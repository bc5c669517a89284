"""The simulator's in-memory state: accounts, their supplier invoices, Suppliers, changelog, faults, stats.

Each account (one Pennylane company) has an API token with its own rate-limit
window (fixed windows aligned on Unix time, so `ratelimit-reset` is a whole Unix
second), supplier invoices kept by id, Suppliers, and a changelog of every
insert, update and delete, kept `retention` (28 days). `expire_changes` drops
every change kept so far at once, as 28 days without a poll would. Every change
takes a fresh time from a clock that never goes back or repeats. One lock guards
everything (one process, a few threads).
"""

from __future__ import annotations

import base64
import bisect
import copy
import dataclasses
import datetime as dt
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable

from ..accounts import AccountBook, Conflict, NotFound
from ..faults import Faults
from .demo_data import (
    DEMO_ACCOUNT,
    DEMO_API_KEY,
    DEMO_INVOICE_COUNT,
    demo_timeline,
    make_invoice,
    rfc3339,
    supplier_document,
    supplier_seeds,
)

ENDPOINTS = ("list", "get", "supplier", "changelog")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DEFAULT_RETENTION = dt.timedelta(days=28)


class Expired(ValueError):
    """A changelog read starting before the oldest change kept."""


@dataclasses.dataclass
class Stats:
    requests: int = 0
    list_requests: int = 0
    get_requests: int = 0
    supplier_requests: int = 0
    changelog_requests: int = 0
    rate_limited: int = 0  # 429 because the token's window was spent
    throttled: int = 0  # 429 injected by the faults
    errors: int = 0
    malformed: int = 0
    slowed: int = 0
    in_flight: int = 0
    max_concurrent: int = 0
    first_request_at: float | None = None  # Unix seconds (the bench measures a sync from it)
    last_request_at: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RateLimit:
    """`limit` requests per fixed window of `window_seconds`, windows aligned on Unix time."""

    limit: int = 25
    window_seconds: int = 5

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix seconds when the window ends
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {"ratelimit-limit": str(self.limit), "ratelimit-remaining": str(self.remaining),
                "ratelimit-reset": str(self.reset)}


@dataclasses.dataclass
class Change:
    seq: int
    processed_at: dt.datetime
    event: dict


@dataclasses.dataclass
class Account:
    id: str
    api_key: str
    invoices: dict[int, dict] = dataclasses.field(default_factory=dict)
    invoice_ids: list[int] = dataclasses.field(default_factory=list)  # sorted
    suppliers: dict[int, dict] = dataclasses.field(default_factory=dict)
    changes: list[Change] = dataclasses.field(default_factory=list)  # by processed_at (and seq)
    retention: dt.timedelta = DEFAULT_RETENTION
    horizon: dt.datetime = EPOCH  # nothing before this is kept, whatever the retention
    purged_seq: int = 0  # the last change no longer kept
    rate_limit: RateLimit = dataclasses.field(default_factory=RateLimit)
    window: tuple[int, int] = (-1, 0)  # (window index, requests used in it)
    faults: Faults = dataclasses.field(default_factory=Faults)
    stats: Stats = dataclasses.field(default_factory=Stats)

    def summary(self) -> dict:
        return {"id": self.id, "invoices": len(self.invoices), "suppliers": len(self.suppliers),
                "changes": len(self.changes), "changelog_retention_seconds": int(self.retention.total_seconds()),
                "rate_limit": self.rate_limit.as_dict(), "faults": self.faults.as_dict(),
                "stats": self.stats.as_dict()}


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        position = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))["after"]
    except (ValueError, TypeError, KeyError):
        raise ValueError("invalid cursor") from None
    if isinstance(position, bool) or not isinstance(position, int):
        raise ValueError("invalid cursor")
    return position


class Store(AccountBook):
    def __init__(self, seed: int | None = None, *, rate_limit: RateLimit | None = None,
                 retention: dt.timedelta = DEFAULT_RETENTION, wall: Callable[[], float] = time.time):
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.rng = random.Random(seed)
        self.default_rate_limit = rate_limit or RateLimit()
        self.default_retention = retention
        self.wall = wall
        self._last_us = 0
        self._next_id = 1000
        self._next_seq = 0

    # --- clocks and ids ------------------------------------------------------------

    def tick(self) -> dt.datetime:
        """UTC microseconds that never repeat nor go back."""
        self._last_us = max(int(self.wall() * 1_000_000), self._last_us + 1)
        return EPOCH + dt.timedelta(microseconds=self._last_us)

    def now(self) -> dt.datetime:
        return EPOCH + dt.timedelta(microseconds=int(self.wall() * 1_000_000))

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- accounts --------------------------------------------------------------------

    def create_account(self, account_id: str | None = None, api_key: str | None = None) -> Account:
        with self.lock:
            account_id = account_id or f"acct_{secrets.token_hex(4)}"
            if account_id in self.accounts:
                raise Conflict(f"account {account_id} exists")
            api_key = api_key or f"pl_test_tok_{secrets.token_hex(12)}"
            if any(a.api_key == api_key for a in self.accounts.values()):
                raise Conflict("another account has this API token")
            account = Account(id=account_id, api_key=api_key, retention=self.default_retention,
                              rate_limit=dataclasses.replace(self.default_rate_limit))
            for seed in supplier_seeds():
                identifier = self._new_id()
                account.suppliers[identifier] = supplier_document(identifier, seed)
            self.accounts[account_id] = account
            return account

    def load_demo(self) -> Account:
        account = self.create_account(DEMO_ACCOUNT, DEMO_API_KEY)
        supplier_ids = list(account.suppliers)
        with self.lock:
            for index, (moment, supplier_index) in enumerate(demo_timeline(self.now(), DEMO_INVOICE_COUNT)):
                document = make_invoice(self.rng, self._new_id(), supplier_ids[supplier_index], created_at=moment,
                                        updated_at=moment)
                if index % 11 == 4:
                    document["archived_at"] = document["updated_at"]
                self._put(account, document, "insert", moment)
        return account

    # --- rate limit ------------------------------------------------------------------

    def take(self, account: Account) -> RateDecision:
        """Count one request against the token's current window, unless it is spent."""
        with self.lock:
            now = self.wall()
            limit, window_seconds = account.rate_limit.limit, account.rate_limit.window_seconds
            index = int(now // window_seconds)
            reset = (index + 1) * window_seconds
            used = account.window[1] if account.window[0] == index else 0
            allowed = used < limit
            if allowed:
                used += 1
            account.window = (index, used)
            return RateDecision(allowed, limit, limit - used, reset, max(1, math.ceil(reset - now)))

    # --- invoices and the changelog ----------------------------------------------------

    def _put(self, account: Account, document: dict, operation: str, moment: dt.datetime) -> None:
        identifier = document["id"]
        if identifier not in account.invoices:
            bisect.insort(account.invoice_ids, identifier)
        account.invoices[identifier] = document
        self._log(account, identifier, operation, moment, document.get("updated_at"))

    def _log(self, account: Account, identifier: int, operation: str, moment: dt.datetime,
             updated_at: object) -> None:
        self._next_seq += 1
        account.changes.append(Change(self._next_seq, moment, {
            "id": identifier, "operation": operation, "processed_at": rfc3339(moment),
            "updated_at": updated_at if isinstance(updated_at, str) else rfc3339(moment)}))

    def add_invoice(self, account_id: str, fields: dict | None = None, *, raw: dict | None = None) -> dict:
        """A new invoice (generated, then `fields` applied); `raw` is stored as given (for bad data)."""
        with self.lock:
            account = self.account(account_id)
            now = self.tick()
            if raw is not None:
                document = copy.deepcopy(raw)
                document.setdefault("id", self._new_id())
            else:
                document = make_invoice(self.rng, self._new_id(), self.rng.choice(list(account.suppliers)),
                                        created_at=now, updated_at=now)
                document.update(copy.deepcopy(fields or {}))
                document["updated_at"] = rfc3339(now)
            identifier = document["id"]
            if isinstance(identifier, bool) or not isinstance(identifier, int) or identifier in account.invoices:
                raise Conflict("invoice id missing, not an integer, or taken")
            self._put(account, document, "insert", now)
            return copy.deepcopy(document)

    def generate(self, account_id: str, count: int) -> int:
        with self.lock:
            account = self.account(account_id)
            suppliers = list(account.suppliers)
            for _ in range(count):
                now = self.tick()
                self._put(account, make_invoice(self.rng, self._new_id(), self.rng.choice(suppliers),
                                                created_at=now, updated_at=now), "insert", now)
            return count

    def update_invoice(self, account_id: str, invoice_id: int, fields: dict) -> dict:
        with self.lock:
            account = self.account(account_id)
            if invoice_id not in account.invoices:
                raise NotFound(f"no invoice {invoice_id}")
            now = self.tick()
            document = {**copy.deepcopy(account.invoices[invoice_id]), **copy.deepcopy(fields),
                        "id": invoice_id, "updated_at": rfc3339(now)}
            self._put(account, document, "update", now)
            return copy.deepcopy(document)

    def archive_invoice(self, account_id: str, invoice_id: int) -> dict:
        return self.update_invoice(account_id, invoice_id, {"archived_at": rfc3339(self.now())})

    def delete_invoice(self, account_id: str, invoice_id: int) -> None:
        """Gone for good: no longer listed, 404 on fetch, a `delete` change."""
        with self.lock:
            account = self.account(account_id)
            if account.invoices.pop(invoice_id, None) is None:
                raise NotFound(f"no invoice {invoice_id}")
            del account.invoice_ids[bisect.bisect_left(account.invoice_ids, invoice_id)]
            now = self.tick()
            self._log(account, invoice_id, "delete", now, rfc3339(now))

    def get_invoice(self, account: Account, invoice_id: int) -> dict | None:
        with self.lock:
            document = account.invoices.get(invoice_id)
            return copy.deepcopy(document) if document is not None else None

    def list_invoices(self, account: Account, after: int | None, ids: list[int] | None,
                      limit: int) -> tuple[list[dict], int | None]:
        """Invoices by id ascending after `after`, only `ids` when given; the last id served when more follow."""
        with self.lock:
            pool = sorted(set(ids)) if ids is not None else account.invoice_ids
            start = bisect.bisect_right(pool, after) if after is not None else 0
            chosen = [i for i in pool[start:] if i in account.invoices][:limit + 1] if ids is not None \
                else pool[start:start + limit + 1]
            items = [copy.deepcopy(account.invoices[i]) for i in chosen[:limit]]
            return items, (chosen[limit - 1] if len(chosen) > limit else None)

    def expire_changes(self, account_id: str) -> int:
        """Forget every change kept so far; how many were dropped."""
        with self.lock:
            account = self.account(account_id)
            account.horizon = self.tick()
            return self._purge(account)

    def _purge(self, account: Account) -> int:
        horizon = max(account.horizon, self.now() - account.retention)
        kept = bisect.bisect_left(account.changes, horizon, key=lambda c: c.processed_at)
        if kept:
            account.purged_seq = account.changes[kept - 1].seq
            del account.changes[:kept]
        return kept

    def read_changes(self, account: Account, start: dt.datetime | None, after_seq: int | None,
                     limit: int) -> tuple[list[dict], int | None]:
        """Changes from `start` (inclusive) or after the `after_seq` cursor, oldest kept when neither."""
        with self.lock:
            self._purge(account)
            if start is not None and start < max(account.horizon, self.now() - account.retention):
                raise Expired("start_date is older than the changes kept")
            if after_seq is not None and after_seq < account.purged_seq:
                raise Expired("the cursor points at changes no longer kept")
            if start is not None:
                begin = bisect.bisect_left(account.changes, start, key=lambda c: c.processed_at)
            elif after_seq is not None:
                begin = bisect.bisect_right(account.changes, after_seq, key=lambda c: c.seq)
            else:
                begin = 0
            chosen = account.changes[begin:begin + limit + 1]
            items = [dict(c.event) for c in chosen[:limit]]
            return items, (chosen[limit - 1].seq if len(chosen) > limit else None)

    # --- suppliers -----------------------------------------------------------------

    def add_supplier(self, account_id: str, fields: dict) -> dict:
        with self.lock:
            account = self.account(account_id)
            identifier = self._new_id()
            document = {"id": identifier, "name": f"Fournisseur {identifier}", "establishment_no": None,
                        "reg_no": None, "vat_number": None, "iban": None, **copy.deepcopy(fields)}
            document["id"] = identifier
            account.suppliers[identifier] = document
            return copy.deepcopy(document)

    def update_supplier(self, account_id: str, supplier_id: int, fields: dict) -> dict:
        with self.lock:
            account = self.account(account_id)
            if supplier_id not in account.suppliers:
                raise NotFound(f"no supplier {supplier_id}")
            account.suppliers[supplier_id] = {**account.suppliers[supplier_id], **copy.deepcopy(fields),
                                              "id": supplier_id}
            return copy.deepcopy(account.suppliers[supplier_id])

    def get_supplier(self, account: Account, supplier_id: int) -> dict | None:
        with self.lock:
            document = account.suppliers.get(supplier_id)
            return copy.deepcopy(document) if document is not None else None
