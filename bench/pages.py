"""Public list pages: what the API adds to its own query, and a concurrent load.

A page's cost over HTTP is compared with the same `find` (filter, sort, projection, limit, hint:
invoices-service's own repository method, on the bench's client) from pymongo, measured in alternation so both
see the same server and the same machine load; the figure is the median of the paired
differences. The HTTP time runs from the request's first byte to the body's last (no JSON
parsing on the client), over one kept-alive connection.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
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
    difference_ms: float  # median of the paired differences, not the difference of the medians
    rate_limit_ms: float  # median of the request's rate-limit count round trip (`findAndModify`)
    own_ms: float  # median of HTTP minus the service's two round trips: parsing, rendering, WSGI, loopback
    invoices: int


def command_seconds(base_url: str) -> dict[str, float]:
    """The service's round trips so far by command, in seconds (its command histogram's sums)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "mongo_command_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    command = sample.labels["command"]
                    totals[command] = totals.get(command, 0.0) + sample.value
    return totals


def raw_find(collection: Collection, company: ObjectId, params: dict):
    """The page's query exactly as invoices-service sends it (its repository), from the bench's client."""
    filters = filters_from(ListQuerySchema().load({k: str(v) for k, v in params.items()}))
    repository = InvoiceRepository(collection.database)
    return lambda: repository.list_page(company, filters)


def time_page(client: Client, collection: Collection, company: ObjectId, params: dict, repeats: int,
              base_url: str) -> PageTiming:
    """HTTP and raw pymongo in alternation (the order swapped every round), after one warm round.
    The service's own round trips (the page's `find`, the rate limit's `findAndModify`) are read from
    its /metrics around each HTTP request (outside the timed span), so what the API spends outside the
    database is also known without the server's noise."""
    find = raw_find(collection, company, params)

    def http() -> bytes:
        status, body = client.get(params)
        if status != 200:
            raise RuntimeError(f"GET {params}: {status} {body[:200]!r}")
        return body

    ids = [str(d["_id"]) for d in find()]
    if [invoice["id"] for invoice in json.loads(http())["invoices"]] != ids:
        raise RuntimeError(f"the baseline must return the page's invoices ({params})")
    http_samples, raw_samples, limits, own = [], [], [], []
    for round_ in range(repeats):
        for action in ((http, find) if round_ % 2 == 0 else (find, http)):
            before = command_seconds(base_url) if action is http else {}
            client.ready()
            started = time.perf_counter()
            action()
            elapsed = (time.perf_counter() - started) * 1000
            if action is http:
                after = command_seconds(base_url)
                spent = {name: (after[name] - before.get(name, 0.0)) * 1000 for name in after}
                http_samples.append(elapsed)
                limits.append(spent.get("findAndModify", 0.0))
                own.append(elapsed - sum(spent.values()))
            else:
                raw_samples.append(elapsed)
    differences = [h - r for h, r in zip(http_samples, raw_samples, strict=True)]
    return PageTiming(statistics.median(http_samples), statistics.median(raw_samples),
                      statistics.median(differences), statistics.median(limits), statistics.median(own), len(ids))


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
