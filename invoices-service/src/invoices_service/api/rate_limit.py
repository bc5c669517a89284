"""The public API's per-company budget, `PUBLIC_API_RATE_LIMIT` (`limits` notation and strategy).

The budget is counted per company (the token's `client`) in fixed windows stored in
INVOICES_DB, one small document per company and window (`limits`' MongoDB storage, a TTL
index removes old ones), so every replica spends the same budget. A process takes the window's
numbers in blocks (`CounterStorage`): with budget to spare one round trip serves up to 16
requests, from a window's first request on, and near the end of the budget every request is
counted alone. Every authenticated answer of the public API carries `RateLimit-Limit`,
`RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window resets); over the budget
the answer is 429 `rate_limited` with `Retry-After`. A database that cannot be reached fails the
request like any route would (503), never lets it through uncounted.

The budget is spent by `limits`' fixed-window strategy, before the blueprint's own hooks.
Flask-Limiter did the same through its generic per-request machinery (limits resolved per
route, exemptions, request contexts) for our one shared limit: 0.15 ms more CPU per request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable

import limits
from bobdesk_shared.errors import ApiError, ServiceUnavailable
from bobdesk_shared.mongo import connect
from flask import Flask, Response, g, request
from limits.storage import MongoDBStorage
from limits.strategies import FixedWindowRateLimiter
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..embedded_server import earlier_than_now, upserted

# OpenAPI response headers of every public route (`@blp.response(..., headers=...)`).
HEADERS = {name: {"description": text, "schema": {"type": "integer", "minimum": 0}} for name, text in (
    ("RateLimit-Limit", "The company's budget per window."),
    ("RateLimit-Remaining", "Requests left in the current window."),
    ("RateLimit-Reset", "Seconds until the current window resets."),
)}
LIMITED_HEADERS = {**HEADERS, "Retry-After": {"description": "Seconds to wait before retrying.",
                                               "schema": {"type": "integer", "minimum": 0}}}


class RateLimited(ApiError):
    status, code, message = 429, "rate_limited", "The company's request budget is spent; retry later."


FIELDS = ["count", "expireAt"]  # of a counter, as `incr` returns it


@dataclasses.dataclass
class Block:
    """Numbers of a company's window that this process took in one count, given out one by one."""

    window_end: dt.datetime
    next: int
    last: int


class CounterStorage(MongoDBStorage):
    """`limits`' MongoDB storage, with four changes:

    - the window's numbers are taken in blocks: a count of `size` reserves that many numbers of
      the company's window for this process, which gives them to its next requests without a
      round trip. A block is at most `BLOCK_MAX` and at most 1/`BLOCK_SHARE` of the budget left,
      as far as the process knows: its first count of a window knows nothing spent yet, and
      reserves up to 1/`BLOCK_SHARE` of the whole budget (a client making a few requests a minute
      pays one round trip a window, not two). The budget is never exceeded; the numbers a process
      holds unused when the window ends are lost to the company: at most `BLOCK_MAX`, and once
      fewer than `BLOCK_SHARE` requests are left (counted one at a time) only what a process's
      first count of the window reserved;
    - our client (bounded timeouts, command metrics), writing with `w: 1`: a counter increment
      lost on failover only makes the budget slightly generous, and `majority` would cost a
      replication round trip per count;
    - the count also returns the window's end, which the headers then read from here instead of
      reading the counter twice more;
    - a `__del__` that closes only a client it opened (the library's opens one at garbage
      collection, and reaches for the database to create its indexes then).
    """

    BLOCK_MAX = 16
    BLOCK_SHARE = 64

    def __init__(self, uri: str, budget: int = 1, **options):
        super().__init__(uri, **options)
        self.budget = budget
        self._blocks: dict[str, Block] = {}
        # Held across a count: the threads of a process wait for one block rather than each
        # taking its own and leaving numbers unused.
        self._blocks_lock = threading.Lock()
        self._last = threading.local()  # (key, number, window end) of this thread's last count

    def _init_mongo_client(self, uri, **options):
        return connect(uri, "invoices-service-rate-limit", w=1)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """The request's number in the company's window (over the budget: refused)."""
        with self._blocks_lock:
            now = dt.datetime.now(dt.UTC)
            block = self._blocks.get(key)
            if block is None or block.window_end <= now or block.next + amount - 1 > block.last:
                block = self._blocks[key] = self._count(key, expiry, self._block_size(block, now, amount))
                self._forget_ended_windows(now)
            number = block.next + amount - 1
            block.next += amount
        self._last.window = (key, number, block.window_end)
        return number

    def _block_size(self, block: Block | None, now: dt.datetime, amount: int) -> int:
        spent = 0 if block is None or block.window_end <= now else block.last
        return max(amount, min(self.BLOCK_MAX, (self.budget - spent) // self.BLOCK_SHARE))

    def _forget_ended_windows(self, now: dt.datetime) -> None:
        if len(self._blocks) > 4096:  # companies seen by this process; a block lives one window
            self._blocks = {key: block for key, block in self._blocks.items() if block.window_end > now}

    def _count(self, key: str, expiry: int, size: int) -> Block:
        expired = earlier_than_now("$expireAt")
        window_end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expiry)
        update = [{"$set": {
            "count": {"$cond": {"if": expired, "then": size, "else": {"$add": ["$count", size]}}},
            "expireAt": {"$cond": {"if": expired, "then": window_end, "else": "$expireAt"}}}}]
        # Concurrent first counts of a window race to create its document. On MongoDB a loser's upsert
        # may hit the unique _id, having counted nothing: it counts again.
        for _attempt in range(3):
            try:
                answer = self.counters.find_one_and_update({"_id": key}, update, upsert=True, projection=FIELDS,
                                                           return_document=ReturnDocument.AFTER)
                counter = upserted(self.counters, {"_id": key}, FIELDS, answer)
            except DuplicateKeyError:
                continue
            if counter is not None:
                count = int(counter["count"])
                return Block(window_end=counter["expireAt"], next=count - size + 1, last=count)
        raise ServiceUnavailable("The request budget could not be counted; retry.", code="contention")

    def _counted(self, key: str):
        window = getattr(self._last, "window", None)
        return window if window is not None and window[0] == key else None

    def get(self, key: str) -> int:
        counted = self._counted(key)
        return counted[1] if counted else super().get(key)

    def get_expiry(self, key: str) -> float:
        counted = self._counted(key)
        if counted is None:
            return super().get_expiry(key)
        self._last.window = None  # read once, by the request that counted it
        return counted[2].timestamp()

    def __del__(self) -> None:
        if self._storage is not None:
            self._storage.close()


SCOPE = "public-api"


def install(app: Flask, blueprint, company: Callable[[], str], settings) -> None:
    """Spend `settings.public_api_rate_limit` per `company()` (the caller's, which authenticates it:
    a bad token is a 401, counted nowhere) on every request of `blueprint`."""
    budget = limits.parse(settings.public_api_rate_limit)
    storage = CounterStorage(settings.mongo_uri, budget=budget.amount, database_name=settings.invoices_db,
                             counter_collection_name="rate_limits")
    windows = FixedWindowRateLimiter(storage)

    @app.before_request
    def spend() -> None:
        if request.blueprint != blueprint.name:
            return
        key = company()
        allowed = windows.hit(budget, SCOPE, key)
        g.rate_limit = windows.get_window_stats(budget, SCOPE, key)
        if not allowed:
            raise RateLimited()

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        window = g.get("rate_limit")
        if window is not None:
            reset = str(max(0, int(window.reset_time - time.time())))
            response.headers["RateLimit-Limit"] = str(budget.amount)
            response.headers["RateLimit-Remaining"] = str(window.remaining)
            response.headers["RateLimit-Reset"] = reset
            if response.status_code == 429:
                response.headers["Retry-After"] = reset
        return response
