"""The simulator's in-memory state: accounts, their invoices, faults and request statistics.

Each account (one Yooz customer) has an API key, webhook secrets, invoices kept
in `(updated_at, id)` order for listing, its own fault injection and statistics
(requests served, in flight, and the most ever served at once: two workers
polling one connection at the same time would show as 2). Every change takes a
fresh `updated_at` from a clock that never goes back or repeats, as a provider's
change feed does. One lock guards everything (one process, a few threads).
"""

from __future__ import annotations

import base64
import bisect
import copy
import dataclasses
import datetime as dt
import json
import random
import secrets
import threading
import time

from ..accounts import AccountBook, Conflict, NotFound
from ..faults import Faults
from .demo_data import (
    DEMO_ACCOUNT,
    DEMO_API_KEY,
    DEMO_INVOICE_COUNT,
    DEMO_WEBHOOK_SECRET,
    SUPPLIERS,
    demo_invoices,
    iso_z,
    make_invoice,
)

ENDPOINTS = ("list", "get")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass
class Stats:
    requests: int = 0
    list_requests: int = 0
    get_requests: int = 0
    throttled: int = 0
    errors: int = 0
    malformed: int = 0
    slowed: int = 0
    in_flight: int = 0
    max_concurrent: int = 0
    last_request_at: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class Clock:
    """UTC microseconds that never repeat nor go back."""

    def __init__(self):
        self._last = 0

    def tick(self) -> dt.datetime:
        now = time.time_ns() // 1000
        self._last = max(now, self._last + 1)
        return EPOCH + dt.timedelta(microseconds=self._last)


@dataclasses.dataclass
class Account:
    id: str
    api_key: str
    webhook_secrets: list[str]
    webhook_url: str | None = None
    invoices: dict[str, dict] = dataclasses.field(default_factory=dict)
    order: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (updated_at, id), sorted
    faults: Faults = dataclasses.field(default_factory=Faults)
    stats: Stats = dataclasses.field(default_factory=Stats)
    sequence: int = 0

    def summary(self) -> dict:
        return {"id": self.id, "invoices": len(self.invoices), "webhook_url": self.webhook_url,
                "faults": self.faults.as_dict(), "stats": self.stats.as_dict()}


def encode_cursor(position: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at, identifier = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(updated_at, str) or not isinstance(identifier, str):
            raise ValueError
        return updated_at, identifier
    except (ValueError, TypeError):
        raise ValueError("invalid cursor") from None


class Store(AccountBook):
    def __init__(self, seed: int | None = None):
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.clock = Clock()
        self.rng = random.Random(seed)

    # --- accounts --------------------------------------------------------------

    def create_account(self, account_id: str | None = None, api_key: str | None = None,
                       webhook_secret: str | None = None, webhook_url: str | None = None) -> Account:
        with self.lock:
            account_id = account_id or f"acct_{secrets.token_hex(4)}"
            if account_id in self.accounts:
                raise Conflict(f"account {account_id} exists")
            api_key = api_key or f"yz_test_sk_{secrets.token_hex(12)}"
            if any(a.api_key == api_key for a in self.accounts.values()):
                raise Conflict("another account has this API key")
            account = Account(id=account_id, api_key=api_key,
                              webhook_secrets=[webhook_secret or f"whsec_{secrets.token_hex(12)}"],
                              webhook_url=webhook_url)
            self.accounts[account_id] = account
            return account

    def load_demo(self) -> Account:
        account = self.create_account(DEMO_ACCOUNT, DEMO_API_KEY, DEMO_WEBHOOK_SECRET)
        for document in demo_invoices(dt.datetime.now(dt.UTC), DEMO_INVOICE_COUNT):
            self._put(account, document)
        account.sequence = DEMO_INVOICE_COUNT
        return account

    # --- invoices --------------------------------------------------------------

    def _put(self, account: Account, document: dict) -> None:
        identifier = document["id"]
        old = account.invoices.get(identifier)
        if old is not None:
            account.order.remove((old["updated_at"], identifier))
        account.invoices[identifier] = document
        bisect.insort(account.order, (document["updated_at"], identifier))

    def _next_id(self, account: Account, year: int) -> str:
        while True:
            account.sequence += 1
            identifier = f"YZ-{year}-{account.sequence:05d}"
            if identifier not in account.invoices:
                return identifier

    def add_invoice(self, account_id: str, fields: dict | None = None, *, raw: dict | None = None) -> dict:
        """A new invoice (generated, then `fields` applied); `raw` is stored as given (for bad data)."""
        with self.lock:
            account = self.account(account_id)
            now = self.clock.tick()
            if raw is not None:
                document = copy.deepcopy(raw)
                document.setdefault("id", self._next_id(account, now.year))
                document["updated_at"] = document.get("updated_at") if isinstance(
                    document.get("updated_at"), str) else iso_z(now)
            else:
                document = make_invoice(self.rng, self._next_id(account, now.year), created_at=now, updated_at=now)
                document.update(copy.deepcopy(fields or {}))
                document["updated_at"] = iso_z(now)
            if not isinstance(document["id"], str) or document["id"] in account.invoices:
                raise Conflict("invoice id missing or taken")
            self._put(account, document)
            return copy.deepcopy(document)

    def generate(self, account_id: str, count: int) -> int:
        with self.lock:
            account = self.account(account_id)
            for _ in range(count):
                now = self.clock.tick()
                self._put(account, make_invoice(self.rng, self._next_id(account, now.year), created_at=now,
                                                updated_at=now, supplier=self.rng.choice(SUPPLIERS)))
            return count

    def update_invoice(self, account_id: str, invoice_id: str, fields: dict) -> dict:
        with self.lock:
            account = self.account(account_id)
            if invoice_id not in account.invoices:
                raise NotFound(f"no invoice {invoice_id}")
            document = copy.deepcopy(account.invoices[invoice_id])
            document.update(copy.deepcopy(fields))
            document["id"] = invoice_id
            document["updated_at"] = iso_z(self.clock.tick())
            self._put(account, document)
            return copy.deepcopy(document)

    def delete_invoice(self, account_id: str, invoice_id: str) -> dict:
        """Soft delete, as Yooz lists it: status `deleted` and a new `updated_at`."""
        return self.update_invoice(account_id, invoice_id, {"status": "deleted"})

    def get_invoice(self, account: Account, invoice_id: str) -> dict | None:
        with self.lock:
            document = account.invoices.get(invoice_id)
            return copy.deepcopy(document) if document is not None else None

    def list_invoices(self, account: Account, updated_since: str, cursor: tuple[str, str] | None,
                      limit: int) -> tuple[list[dict], str | None]:
        """Items with updated_at >= updated_since (inclusive), after `cursor`, by (updated_at, id)."""
        with self.lock:
            start = bisect.bisect_left(account.order, (updated_since, ""))
            if cursor is not None:
                start = max(start, bisect.bisect_right(account.order, cursor))
            positions = account.order[start:start + limit + 1]
            items = [copy.deepcopy(account.invoices[i]) for _, i in positions[:limit]]
            next_cursor = encode_cursor(positions[limit - 1]) if len(positions) > limit else None
            return items, next_cursor
