"""Reconcile after an initial sync: the poller's `POST /internal/invoices/reconcile` on a company of
N invoices, measured on the embedded server through the service layer.

Figures: the first reconcile (no fingerprint stored: suppliers re-matched, references linked), a
second one with nothing changed, and one after a contractor changed; each against a same-run
baseline, one read of the company's invoices (`find` on (client, _id)), so a reconcile bounded by
what changed stays well under 1x and one that reads every invoice shows as a multiple.

    .venv/bin/python bench/reconcile.py [--invoices 20000]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from bobdesk_devtools.stack import free_port, mongo_uri_for, start_embedded_mongo
from bobdesk_shared.canonical import EXAMPLE
from bson import ObjectId
from invoices_service.ingest_authorizer import IngestGrant
from invoices_service.repository import InvoiceRepository, PlatformRepository
from invoices_service.services import InvoiceService
from pymongo import MongoClient

SUPPLIERS = 2_000
TICKETS = 5_000
BATCH = 500


def luhn_siret(prefix13: str) -> str:
    for digit in "0123456789":
        candidate = prefix13 + digit
        total = sum((v - 9 if v > 9 else v) for v in
                    (int(c) * (2 if i % 2 else 1) for i, c in enumerate(reversed(candidate))))
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


class OneConnection:
    def __init__(self, client: ObjectId):
        self.grant = IngestGrant(ObjectId(), client, "yooz")

    def authorize(self, connection_id: str, fence):
        return self.grant


def invoice(i: int, sirets: list[str]) -> dict:
    document = copy.deepcopy(EXAMPLE)
    document["invoice_platform_id"] = f"YZ-{i:06d}"
    document["raw"]["id"] = f"YZ-{i:06d}"
    document["number"] = f"F-{i}"
    document["supplier"] = {**document["supplier"], "siret": sirets[i % len(sirets)]}
    document["order_reference"] = f"T-{i % (TICKETS * 2)}"  # half the references have a ticket
    return document


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(invoices: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    port = free_port()
    server = start_embedded_mongo(port, workdir / "data", workdir / "server.log")
    mongo = MongoClient(mongo_uri_for(port), tz_aware=True)
    try:
        client = ObjectId()
        repository = InvoiceRepository(mongo["bench_invoices"])
        repository.ensure_indexes()
        platform = mongo["bench_platform"]
        sirets = [luhn_siret(f"{100000000 + 7 * s:09d}0001") for s in range(SUPPLIERS)]
        contractors = platform.contractors.insert_many(
            [{"client": client, "partners": [], "siret": siret, "isActive": True} for siret in sirets[::2]])
        platform.tickets.insert_many([{"client": client, "number": f"T-{t}", "contractor": None}
                                      for t in range(TICKETS)])
        authorizer = OneConnection(client)
        service = InvoiceService(repository, PlatformRepository(platform), authorizer)
        connection = str(authorizer.grant.connection)
        for start in range(0, invoices, BATCH):
            service.ingest(connection, 1, [invoice(i, sirets) for i in range(start, min(start + BATCH, invoices))], [])
        baseline = timed(lambda: list(repository.invoices.find({"client": client}, {"_id": 1}, batch_size=10_000)))
        figures = {"invoices": invoices, "baseline_read_s": baseline}
        figures["first_s"] = timed(lambda: figures.setdefault("first", service.reconcile(client)))
        figures["unchanged_s"] = timed(lambda: figures.setdefault("unchanged", service.reconcile(client)))
        platform.contractors.update_one({"_id": contractors.inserted_ids[0]}, {"$set": {"isActive": False}})
        figures["contractor_changed_s"] = timed(lambda: figures.setdefault("contractor_changed",
                                                                             service.reconcile(client)))
        return figures
    finally:
        mongo.close()
        server.stop(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=20_000)
    figures = run(parser.parse_args().invoices)
    baseline = figures["baseline_read_s"]
    print(f"{figures['invoices']} invoices; baseline (read the company's ids) {baseline:.3f}s")
    for name in ("first", "unchanged", "contractor_changed"):
        seconds = figures[f"{name}_s"]
        print(f"  {name:20} {seconds:7.3f}s  {seconds / baseline:7.1f}x baseline  {figures[name]}")


if __name__ == "__main__":
    main()
