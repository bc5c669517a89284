"""Public list pages: what the API adds to its own query, and a concurrent load.

A page's cost over HTTP is compared with the same `find` (filter, sort, projection, limit, hint:
invoices-service's own repository method, on the bench's client) from pymongo in two ways:

- in alternation: HTTP, the find, and the find again (the A/A pair), the order rotated every round
  so all three see the same server and machine load; the figure is the median of the paired
  differences. The A/A pair tells this method's resolution: on the embedded server a company of
  20,000 invoices makes one find cost 1-3 s, and two identical finds differ by 100-200 ms;
- in the same execution: HTTP minus the service's own wait for that very find, driver included as
  the find from pymongo includes it (its `invoices_list_query_duration_seconds` around each
  request), free of the server's noise. The rate limit's count is on the HTTP side: it is the API's.

The HTTP time runs from the request's first byte to the body's last (no JSON parsing on the
client), over one kept-alive connection.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import math
import random
import statistics
import threading
import time
from urllib.parse import urlencode, urlsplit

import requests
from bobdesk_devtools.testing import public_token
from bson import ObjectId
from invoices_service.api import filters_from
from invoices_service.repository import InvoiceRepository
from invoices_service.schemas import ListQuerySchema
from prometheus_client.parser import text_string_to_metric_families
from pymongo import ASCENDING
from pymongo.collection import Collection

PAGE = 200
LIST_PATH = "/api/v3.0/invoices"


class Client:
    """One kept-alive HTTP/1.1 connection to the public list, timed without client-side parsing."""

    IDLE_SECONDS = 4  # gunicorn closes a kept-alive connection idle for 5 s

    def __init__(self, base_url: str, company: ObjectId):
        url = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {public_token(str(company), ttl_seconds=3600)}"}
        self.used_at = 0.0

    def ready(self) -> None:
        """Connected, on a connection the server will not close meanwhile (call before timing)."""
        if time.perf_counter() - self.used_at > self.IDLE_SECONDS:
            self.connection.close()
            self.connection.connect()

    def get(self, params: dict) -> tuple[int, bytes]:
        self.connection.request("GET", f"{LIST_PATH}?{urlencode(params)}", headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        self.used_at = time.perf_counter()
        return response.status, body

    def close(self) -> None:
        self.connection.close()


@dataclasses.dataclass(frozen=True)
class PageTiming:
    http_ms: float
    raw_ms: float
    difference_ms: float  # in alternation: median of the paired differences HTTP - find
    same_execution_ms: float  # median of HTTP minus the service's own wait for that find (driver included)
    resolution_ms: float  # what the alternation can tell apart: 3 standard errors of its median
    aa_ms: float  # the A/A pair: median of the paired differences find - find
    rate_limit_ms: float  # median of the request's rate-limit count round trips (`findAndModify`)
    own_ms: float  # median of HTTP minus the find and the rate limit's count: parsing, rendering, WSGI, loopback
    invoices: int

    @property
    def consistent(self) -> bool:
        """The two methods agree within what the alternation can tell apart (reported, not a target:
        their baselines run in two processes, which pay differently for the same find)."""
        return abs(self.difference_ms - self.same_execution_ms) <= self.resolution_ms

    def within(self, budget_ms: float) -> bool:
        """Both methods keep the page within `budget_ms`: the same execution's figure, and the
        alternation's as far as it can tell (its difference less its resolution)."""
        return self.same_execution_ms <= budget_ms and self.difference_ms - self.resolution_ms <= budget_ms


LIST_QUERY = "list query"  # `command_seconds`' key of the list queries, driver included


def command_seconds(base_url: str) -> dict[str, float]:
    """The service's round trips so far by command, and its list queries' (LIST_QUERY), in seconds
    (its histograms' sums)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_sum"):
                continue
            if family.name == "mongo_command_duration_seconds":
                command = sample.labels["command"]
                totals[command] = totals.get(command, 0.0) + sample.value
            elif family.name == "invoices_list_query_duration_seconds":
                totals[LIST_QUERY] = totals.get(LIST_QUERY, 0.0) + sample.value
    return totals


def raw_find(collection: Collection, company: ObjectId, params: dict):
    """The page's query exactly as invoices-service sends it (its repository), from the bench's client."""
    filters = filters_from(ListQuerySchema().load({k: str(v) for k, v in params.items()}))
    repository = InvoiceRepository(collection.database)
    return lambda: repository.list_page(company, filters)


def resolution(aa_differences: list[float]) -> float:
    """Three standard errors of a median of paired differences, from the A/A pairs' spread (a
    normal scale from the median absolute deviation), at least 1 ms."""
    center = statistics.median(aa_differences)
    sigma = 1.4826 * statistics.median(abs(d - center) for d in aa_differences)
    return max(1.0, 3 * 1.2533 * sigma / math.sqrt(len(aa_differences)))


def time_page(client: Client, collection: Collection, company: ObjectId, params: dict, repeats: int,
              base_url: str) -> PageTiming:
    """HTTP, the find and the find again, the order rotated every round, after one warm round. The
    service's own waits (the page's find, driver included; the rate limit's `findAndModify`) are read
    from its /metrics around each HTTP request (outside the timed span)."""
    find = raw_find(collection, company, params)

    def http() -> bytes:
        status, body = client.get(params)
        if status != 200:
            raise RuntimeError(f"GET {params}: {status} {body[:200]!r}")
        return body

    ids = [str(d["_id"]) for d in find()]
    if [invoice["id"] for invoice in json.loads(http())["invoices"]] != ids:
        raise RuntimeError(f"the baseline must return the page's invoices ({params})")
    samples: dict[str, list[float]] = {"http": [], "find": [], "again": []}
    same, limits, own = [], [], []
    order = ["http", "find", "again"]
    for round_ in range(repeats):
        for name in order[round_ % 3:] + order[:round_ % 3]:
            before = command_seconds(base_url) if name == "http" else {}
            client.ready()
            started = time.perf_counter()
            http() if name == "http" else find()
            elapsed = (time.perf_counter() - started) * 1000
            samples[name].append(elapsed)
            if name == "http":
                after = command_seconds(base_url)
                spent = {command: (after[command] - before.get(command, 0.0)) * 1000 for command in after}
                same.append(elapsed - spent[LIST_QUERY])
                limits.append(spent.get("findAndModify", 0.0))
                own.append(elapsed - spent[LIST_QUERY] - spent.get("findAndModify", 0.0))
    differences = [h - r for h, r in zip(samples["http"], samples["find"], strict=True)]
    aa = [a - r for a, r in zip(samples["again"], samples["find"], strict=True)]
    return PageTiming(statistics.median(samples["http"]), statistics.median(samples["find"]),
                      statistics.median(differences), statistics.median(same), resolution(aa), statistics.median(aa),
                      statistics.median(limits), statistics.median(own), len(ids))


def page_kinds(collection: Collection, company: ObjectId) -> dict[str, dict]:
    """The first page, a page from the middle of the company's invoices, and a filtered page
    (unmatched, updated in the last three quarters of the sync)."""
    count = collection.count_documents({"client": company})
    middle = collection.find({"client": company}, {"_id": 1}, sort=[("_id", ASCENDING)], skip=count // 2,
                             limit=1).next()["_id"]
    quarter = collection.find({"client": company}, {"updated_at": 1}, sort=[("updated_at", ASCENDING)],
                              skip=count // 4, limit=1).next()["updated_at"]
    updated_after = int(quarter.timestamp() * 1000)
    return {"first page": {"limit": PAGE},
            f"page at depth {count // 2:,}": {"limit": PAGE, "cursor": str(middle)},
            "association=unmatched&updated_after": {"limit": PAGE, "association": "unmatched",
                                                    "updated_after": updated_after}}


@dataclasses.dataclass(frozen=True)
class LoadFigures:
    requests: int
    errors: int
    per_second: float
    p50_ms: float
    p99_ms: float
    first_error: str


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load(base_url: str, collection: Collection, company: ObjectId, clients: int, seconds: float,
         limit: int = 50) -> LoadFigures:
    """`clients` threads, each on its own connection, asking pages of `limit` from random cursors
    of the company's invoices until `seconds` have passed. An error is any answer but a 200 with
    the page, or a failed connection."""
    ids = [str(d["_id"]) for d in collection.find({"client": company}, {"_id": 1})]
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(base_url, company)
        try:
            while time.perf_counter() < deadline:
                params = {"limit": limit, "cursor": rng.choice(ids)}
                started = time.perf_counter()
                try:
                    status, body = client.get(params)
                    problem = None if status == 200 and body.startswith(b'{"cursor":') else f"{status} {body[:200]!r}"
                except (OSError, http.client.HTTPException) as exc:
                    problem = repr(exc)
                    client.close()
                    client = Client(base_url, company)
                with lock:
                    (errors.append(problem) if problem else latencies.append(time.perf_counter() - started))
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    done = len(latencies) + len(errors)
    return LoadFigures(done, len(errors), done / elapsed, percentile(latencies, 0.5) * 1000 if latencies else 0,
                       percentile(latencies, 0.99) * 1000 if latencies else 0, errors[0] if errors else "")
