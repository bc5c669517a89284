"""`make bench`: the system's speed and memory as ratios against baselines measured in the same run.

Starts the embedded MongoDB (or uses MONGO_URI), the Yooz simulator and every
component (see stack.py), then measures, in this order because each step
builds the data of the next:

  4. poller peak memory (VmHWM) after an initial sync of 2,000 invoices, then of 20,000;
  3. that 20,000-invoice sync against a raw bulk insert of the same stored documents;
  6. database commands per ingested batch (sync average, and direct batches of 1/100/500);
  1. the public list, 200 a page, against the raw pymongo query returning the same documents;
  2. a page at depth 10,000 against the first page;
  6. database commands per list request;
  5. webhook received -> invoice visible in the public API, p50/p99.

Prints a table (figure, baseline, ratio, target, met) and writes the figures
as JSON (bench/results.json unless --out). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from bobdesk_devtools.testing import service_token, wait_until
from bson import ObjectId
from ingest_worker.providers.yooz import YoozAdapter
from invoices_service.embedded_server import list_hint
from invoices_service.repository import PUBLIC_PROJECTION
from pymongo import ASCENDING, IndexModel
from stack import Stack, peak_rss_mib  # bench/ is the script's directory, first on sys.path

HERE = Path(__file__).resolve().parent


def median_seconds(action, repeats: int) -> float:
    action()  # warm: connections, caches
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Bench:
    def __init__(self, stack: Stack, invoices: int, small: int, repeats: int, webhooks: int):
        self.stack = stack
        self.invoices = invoices
        self.small = small
        self.repeats = repeats
        self.webhooks = webhooks
        self.rows: list[dict] = []
        self.company: ObjectId | None = None  # the company of the large sync, listed by 1 and 2

    def row(self, scenario: str, figure: float, unit: str, target: str, met: bool | None, *,
            baseline: float | None = None, ratio: float | None = None, note: str = "") -> None:
        self.rows.append({"scenario": scenario, "figure": round(figure, 3), "unit": unit,
                          "baseline": None if baseline is None else round(baseline, 3),
                          "ratio": None if ratio is None else round(ratio, 3), "target": target, "met": met,
                          "note": note})

    # --- 3, 4 and 6: initial sync ----------------------------------------------------------------

    def sync(self, count: int) -> dict:
        """One fresh poller, one new connection of `count` invoices: duration, peak memory, commands."""
        account = self.stack.account(count)
        company = ObjectId()
        poller = self.stack.start_poller()
        commands, batches = self.stack.invoices_commands(), self.stack.batches_stored()
        started = time.perf_counter()
        connection = self.stack.create_connection(company, account)
        wait_until(lambda: self.stack.last_polled_at(company, connection["id"]), 600, 0.1, "the initial sync")
        seconds = time.perf_counter() - started
        peak = peak_rss_mib(poller.pid)
        commands = self.stack.invoices_commands() - commands
        batches = self.stack.batches_stored() - batches
        self.stack.stop_process(poller)
        stored = self.stack.invoices_db.invoices.count_documents({"client": company})
        if stored != count:
            raise RuntimeError(f"the sync stored {stored} invoices instead of {count}")
        return {"company": company, "connection": connection["id"], "seconds": seconds, "peak_mib": peak,
                "commands": commands, "batches": batches}

    def raw_bulk_insert_seconds(self, company: ObjectId) -> float:
        """The same stored documents, inserted by pymongo into a collection with the same indexes."""
        source = self.stack.invoices_db.invoices
        documents = list(source.find({"client": company}))
        scratch = self.stack.invoices_db[f"raw_baseline_{ObjectId()}"]
        indexes = [IndexModel(list(spec["key"]), name=name,
                              **{k: v for k, v in spec.items() if k in ("unique", "partialFilterExpression",
                                                                         "sparse")})
                   for name, spec in source.index_information().items() if name != "_id_"]
        scratch.create_indexes(indexes)
        started = time.perf_counter()
        scratch.insert_many(documents, ordered=False)
        seconds = time.perf_counter() - started
        scratch.drop()
        return seconds

    def initial_sync(self) -> None:
        small = self.sync(self.small)
        large = self.sync(self.invoices)
        self.company = large["company"]
        self.stack.delete_connection(small["company"], small["connection"])
        self.stack.delete_connection(large["company"], large["connection"])

        raw = self.raw_bulk_insert_seconds(large["company"])
        ratio = large["seconds"] / raw
        self.row(f"3. initial sync of {self.invoices:,} invoices (simulator -> poller -> store)", large["seconds"],
                 "s", "<= 5x raw bulk insert", ratio <= 5, baseline=raw, ratio=ratio,
                 note=f"{self.invoices / large['seconds']:,.0f} invoices/s; baseline: insert_many of the "
                      f"stored documents into a collection with the same indexes")
        growth = large["peak_mib"] - small["peak_mib"]
        self.row(f"4. poller peak RSS, {self.invoices:,} vs {self.small:,} invoices", growth, "MiB more",
                 "<= 30 MiB more", growth <= 30, baseline=small["peak_mib"],
                 note=f"{small['peak_mib']:.1f} MiB at {self.small:,}, {large['peak_mib']:.1f} MiB at "
                      f"{self.invoices:,} (VmHWM)")
        per_batch = large["commands"] / large["batches"]
        self.row("6. database commands per ingested batch, during the sync", per_batch, "commands",
                 "<= 4", per_batch <= 4,
                 note=f"{large['commands']:.0f} commands for {large['batches']:.0f} batches of 100 "
                      f"(includes the one reconcile after the sync)")

    # --- 6: batches of any size --------------------------------------------------------------------

    def batch_commands(self) -> None:
        """Direct batches of 1, 100 and 500 new invoices, then the same batches replayed."""
        account = self.stack.account(801)
        company = ObjectId()
        connection = self.stack.create_connection(company, account)
        adapter = YoozAdapter(self.stack.sim_url, http=None)
        documents = self.stack.sim_invoices(account)
        canonical = [adapter.to_canonical(d) for d in documents]
        headers = {"Authorization": f"Bearer {service_token('ingest-worker')}"}
        counts = {}

        def store(label: str, part: list[dict]) -> None:
            before = self.stack.invoices_commands()
            response = self.stack.http.post(f"{self.stack.invoices_url}/internal/invoices/batch", timeout=120,
                                            headers=headers, json={"connection": connection["id"], "fence": None,
                                                                   "invoices": part, "cancellations": []})
            response.raise_for_status()
            counts[label] = self.stack.invoices_commands() - before

        offset = 0
        for size in (1, 100, 500):
            part = canonical[offset:offset + size]
            offset += size
            store(f"new {size}", part)
            store(f"replayed {size}", part)
        # The worst batch: 100 changed invoices and 100 new ones.
        changed = [{**invoice, "number": f"{invoice['number']}-bis"} for invoice in canonical[:100]]
        store("100 changed + 100 new", changed + canonical[offset:offset + 100])
        worst = max(counts.values())
        self.stack.delete_connection(company, connection["id"])
        self.row("6. database commands per ingested batch of 1 to 500, new, replayed, mixed", worst,
                 "commands (worst)",
                 "<= 4", worst <= 4, note=", ".join(f"{k}: {v:.0f}" for k, v in counts.items()))

    # --- 1, 2 and 6: the public list --------------------------------------------------------------------

    def listing(self) -> None:
        company, stack = self.company, self.stack
        first = stack.list_invoices(company, limit=200)
        assert len(first["invoices"]) == 200

        query = {"client": company}
        raw_ids: list[str] = []

        assert list_hint(query) is None  # the baseline is the same plan: the planner's own

        def raw_first_page():
            raw_ids[:] = [str(d["_id"]) for d in stack.invoices_db.invoices.find(
                query, PUBLIC_PROJECTION, sort=[("_id", ASCENDING)], limit=200, batch_size=200)]

        raw = median_seconds(raw_first_page, self.repeats)
        assert raw_ids == [i["id"] for i in first["invoices"]], "the baseline must return the same documents"
        api = median_seconds(lambda: stack.list_invoices(company, limit=200), self.repeats)
        self.row("1. public list, 200 a page (HTTP, median)", api * 1000, "ms", "<= 2x raw pymongo",
                 api / raw <= 2, baseline=raw * 1000, ratio=api / raw,
                 note=f"median of {self.repeats}; baseline: the same find (filter, sort, projection, "
                      f"limit, index) from pymongo")

        depth = self.invoices // 2
        cursor = str(stack.invoices_db.invoices.find({"client": company}, {"_id": 1}, sort=[("_id", ASCENDING)],
                                                      skip=depth - 1, limit=1).next()["_id"])
        deep_page = stack.list_invoices(company, limit=200, cursor=cursor)
        assert len(deep_page["invoices"]) == 200
        deep = median_seconds(lambda: stack.list_invoices(company, limit=200, cursor=cursor), self.repeats)
        self.row(f"2. page at depth {depth:,} vs the first page (HTTP, median)", deep * 1000, "ms",
                 "<= 1.3x first page", deep / api <= 1.3, baseline=api * 1000, ratio=deep / api)

        counts = []
        for params in ({"limit": 200}, {"limit": 200, "cursor": cursor}, {"limit": 50, "association": "unmatched"},
                       {"limit": 10, "provider": "yooz", "updated_after": 0}):
            before = stack.invoices_commands()
            stack.list_invoices(company, **params)
            counts.append(stack.invoices_commands() - before)
        # The page's find, and the count of the company's budget (the public API's rate limit).
        self.row("6. database commands per list request", max(counts), "commands (worst)", "exactly 2",
                 all(c == 2 for c in counts), note=f"first, deep, unmatched, filtered: {counts}")

    # --- 5: webhook to visible ------------------------------------------------------------------------

    def webhooks_latency(self) -> None:
        stack = self.stack
        poller = stack.start_poller()  # also drains webhook events, as in production
        account = stack.account(1)
        company = ObjectId()
        connection = stack.create_connection(company, account, webhooks=True)
        wait_until(lambda: stack.last_polled_at(company, connection["id"]), 60, 0.1, "the first poll")
        samples = []
        for _ in range(self.webhooks):
            created = stack.add_sim_invoice(account)
            started = time.perf_counter()
            answer = stack.send_webhook(account, connection["id"], created["id"])
            if answer["status"] != 202:
                raise RuntimeError(f"webhook refused: {answer}")
            wait_until(lambda c=created: stack.list_invoices(company, limit=1, invoice_platform_id=c["id"])
                       ["invoices"], 30, 0.01, "the webhook's invoice")
            samples.append(time.perf_counter() - started)
        floor = median_seconds(lambda: stack.list_invoices(company, limit=1, invoice_platform_id="none"),
                               self.repeats)
        stack.stop_process(poller)
        stack.delete_connection(company, connection["id"])
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        self.row("5. webhook received -> visible in the public API, p50", p50 * 1000, "ms", "", None,
                 baseline=floor * 1000, note=f"{self.webhooks} events one after another; baseline: one "
                                             f"public list request (the visibility check itself)")
        self.row("5. webhook received -> visible in the public API, p99", p99 * 1000, "ms", "<= 500 ms",
                 p99 <= 0.5, baseline=floor * 1000)


MET = {True: "yes", False: "NO", None: ""}  # None: a figure reported without a target of its own


def print_table(rows: list[dict]) -> None:
    header = ("scenario", "figure", "baseline", "ratio", "target", "met")
    lines = [(r["scenario"], f"{r['figure']:,.1f} {r['unit']}",
              "" if r["baseline"] is None else f"{r['baseline']:,.1f}",
              "" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["target"], MET[r["met"]])
             for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *lines):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))
    for r in rows:
        if r["note"]:
            print(f"  {r['scenario'].split(' ')[0]} {r['note']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=20_000, help="the large initial sync (default 20000)")
    parser.add_argument("--small", type=int, default=2_000, help="the small initial sync (default 2000)")
    parser.add_argument("--repeats", type=int, default=9, help="requests per median (default 9)")
    parser.add_argument("--webhooks", type=int, default=100, help="webhook events timed (default 100)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    if args.invoices < 20_000:
        print(f"note: with --invoices {args.invoices} the deep page is at depth {args.invoices // 2}, not 10,000")

    workdir = Path(tempfile.mkdtemp(prefix="bobdesk-bench-"))
    started = time.monotonic()
    stack = Stack(workdir, os.environ.get("MONGO_URI") or None)
    bench = Bench(stack, args.invoices, args.small, args.repeats, args.webhooks)
    try:
        stack.start_services()
        for step in (bench.initial_sync, bench.batch_commands, bench.listing, bench.webhooks_latency):
            print(f"[{time.monotonic() - started:5.0f}s] {step.__name__}", flush=True)
            step()
    except (RuntimeError, AssertionError, requests.RequestException) as exc:
        print(f"bench failed: {exc!r}; process logs in {workdir}", file=sys.stderr)
        return 2
    finally:
        stack.stop()
    elapsed = time.monotonic() - started
    print()
    print_table(bench.rows)
    print(f"\n{elapsed:.0f} s in all; figures in {args.out}")
    args.out.write_text(json.dumps({
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "database": "MONGO_URI" if os.environ.get("MONGO_URI") else "embedded SecantusDB",
        "parameters": {k: v for k, v in vars(args).items() if k != "out"},
        "seconds": round(elapsed, 1), "results": bench.rows,
    }, indent=2) + "\n")
    return 1 if any(r["met"] is False for r in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
