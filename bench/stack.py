"""The system under measurement: real processes on the embedded MongoDB (or MONGO_URI).

bobdesk_devtools.stack starts them on free ports, as `make run` does: the Yooz and
Pennylane simulators, and connections-service, invoices-service and the webhook receiver under
gunicorn as in production; pollers are started per scenario so each one's peak
memory is its own. Every process logs to a file under the run's work directory's
logs/ (printed when something fails).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import requests
from bobdesk_devtools import stack as launch
from bobdesk_devtools.testing import TEST_ENV, public_token, user_token
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient


def metric_total(url: str, family: str, **labels) -> float:
    """The sum of `family`'s samples whose labels include `labels`, read from `url`/metrics."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(sample.value for metrics in text_string_to_metric_families(text) if metrics.name == family
               for sample in metrics.samples
               if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()))


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a gunicorn master and its workers)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pending += [int(child) for child in (task / "children").read_text().split()]
    return tree


def set_cpus(pids: list[int], cpus: set[int]) -> None:
    """Every thread of `pids` on `cpus` (an affinity is per thread; new threads inherit it)."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever held."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


class Stack:
    """bobdesk_devtools.stack's processes on free ports, and the calls the scenarios make."""

    def __init__(self, workdir: Path, mongo_uri: str | None, workers: int = 2, threads: int = 4):
        """gunicorn sized as shipped (bobdesk_shared/gunicorn_conf.py's defaults) unless told."""
        suffix = uuid.uuid4().hex[:8]
        self.dbs = {"CONNECTIONS_DB": f"bench_conn_{suffix}", "INVOICES_DB": f"bench_inv_{suffix}",
                    "INGEST_DB": f"bench_ing_{suffix}", "PLATFORM_DB": f"bench_plat_{suffix}"}
        env = {
            # Production's log level: the one log line per request is part of what a request costs.
            **os.environ, **TEST_ENV, **self.dbs, "LOG_LEVEL": "INFO", "YOOZ_SIM_DEMO": "0",
            "PENNYLANE_SIM_DEMO": "0",
            # One initial sync per connection: no second poll inside a measurement. An idle poller
            # claims every 250 ms (production: 1 s), each claim a database command during the sync.
            "POLL_INTERVAL_SECONDS": "600", "WORKER_LEASE_SECONDS": "60", "WORKER_IDLE_CLAIM_MS": "250",
            # The budget is counted on every request (its cost is measured) but never spent: the
            # webhook figure polls the public list of one company every 10 ms, the load 16 clients.
            "PUBLIC_API_RATE_LIMIT": "1000000/minute",
        }
        for variable in ("YOOZ_BASE_URL", "PENNYLANE_BASE_URL"):
            env.pop(variable, None)  # the scenarios drive the simulators' admin APIs
        if mongo_uri:
            env["MONGO_URI"] = mongo_uri
        else:
            env.pop("MONGO_URI", None)
        self.launcher = launch.Stack(env, workdir, free_ports=True, workers=workers, threads=threads)
        self.workdir = workdir
        self.mongo = MongoClient(self.launcher.mongo_uri, tz_aware=True)
        self.sim_url = self.launcher.env["YOOZ_BASE_URL"]
        self.pennylane_url = self.launcher.env["PENNYLANE_BASE_URL"]
        self.http = requests.Session()

    @property
    def invoices_db(self):
        return self.mongo[self.dbs["INVOICES_DB"]]

    # --- processes -------------------------------------------------------------------------

    def start_services(self) -> None:
        self.launcher.start(poller=False)
        self.connections_url = self.launcher.url("connections-service")
        self.invoices_url = self.launcher.url("invoices-service")
        self.webhooks_url = self.launcher.url("webhook-receiver")

    def start_poller(self) -> tuple[launch.Process, str]:
        """A poller and the URL of its operations endpoints (/metrics: no database behind it)."""
        process = self.launcher.start_poller()
        return process, process.metrics_url

    @staticmethod
    def stop_process(process: launch.Process) -> None:
        # A poller finishes its poll first, including the reconcile after a sync (tens of seconds for
        # 20,000 invoices on the embedded server).
        process.stop(300)

    @contextlib.contextmanager
    def database_on_a_cpu_of_its_own(self, bench_apart: bool = False):
        """The embedded server on CPU 0, every other process (the components, the bench) on the others,
        while the block runs: production runs the database on machines of its own. Here a 1-3 s query
        of the server would otherwise evict the caches of the process it answers (measured: HTTP minus
        the same find, 20,000 invoices, 8.5 ms unpinned, 6.1 ms pinned), and during a sync the
        components' CPU would take the server's, which its baseline (an insert_many from one
        client) never has to share. A no-op with one CPU or a database of MONGO_URI.

        With `bench_apart` (pages timed), the bench's own process leaves the components' CPUs: for a
        CPU of its own with three or more, else for the server's. Its client stands for one across a
        network, which never waits for what the service does once its answer is sent (freeing the
        page, re-arming the kept-alive connection); on the service's CPU it would (measured: HTTP minus
        the same find, 200 invoices, 4.4 and 4.3 ms there, 3.9 and 4.0 ms beside the server). Beside
        the server it takes nothing from the queries it times: the server has answered when the client
        reads, and waits for the next request while the client writes it."""
        cpus = os.sched_getaffinity(0)
        if not self.launcher.embedded_mongo or len(cpus) < 2:
            yield
            return
        server = next(p for p in self.launcher.processes if p.name == "mongodb")
        others = [pid for p in self.launcher.processes if p is not server for pid in process_tree(p.pid)]
        database_cpu = min(cpus)
        components = cpus - {database_cpu}
        bench = components
        if bench_apart:
            bench = {min(components)} if len(components) > 1 else {database_cpu}
            components = components - bench  # unchanged with two CPUs: the bench is beside the server
        set_cpus(process_tree(server.pid), {database_cpu})
        set_cpus(others, components)
        set_cpus([os.getpid()], bench)
        try:
            yield
        finally:
            set_cpus([*process_tree(server.pid), *others, os.getpid()], cpus)

    def stop(self) -> None:
        if not self.launcher.embedded_mongo:  # an embedded server goes with its temporary storage
            for name in self.dbs.values():
                self.mongo.drop_database(name)
        self.mongo.close()
        self.launcher.stop()

    # --- the simulator -----------------------------------------------------------------------

    def account(self, invoices: int) -> dict:
        response = self.http.post(f"{self.sim_url}/_admin/accounts", json={"invoices": invoices}, timeout=300)
        response.raise_for_status()
        return response.json()

    def sim_invoices(self, account: dict) -> list[dict]:
        response = self.http.get(f"{self.sim_url}/_admin/accounts/{account['id']}/invoices", timeout=60)
        return response.json()["invoices"]

    def add_sim_invoice(self, account: dict) -> dict:
        response = self.http.post(f"{self.sim_url}/_admin/accounts/{account['id']}/invoices",
                                  json={"webhook": False}, timeout=30)
        response.raise_for_status()
        return response.json()

    def send_webhook(self, account: dict, connection_id: str, invoice_id: str) -> dict:
        response = self.http.post(f"{self.sim_url}/_admin/accounts/{account['id']}/webhooks", timeout=30,
                                  json={"url": f"{self.webhooks_url}/webhooks/yooz/{connection_id}",
                                        "invoice_id": invoice_id})
        response.raise_for_status()
        return response.json()

    # --- the public APIs -------------------------------------------------------------------------

    def create_connection(self, company: ObjectId, account: dict, webhooks: bool = False) -> dict:
        body = {"provider": "yooz", "apiKey": account["api_key"]}
        if webhooks:
            body["webhookSecret"] = account["webhook_secrets"][0]
        response = self.http.post(f"{self.connections_url}/invoice-connections", json=body, timeout=30,
                                  headers={"Authorization": f"Bearer {user_token(str(company))}"})
        response.raise_for_status()
        return response.json()

    def delete_connection(self, company: ObjectId, connection_id: str) -> None:
        self.http.delete(f"{self.connections_url}/invoice-connections/{connection_id}", timeout=30,
                         headers={"Authorization": f"Bearer {user_token(str(company))}"}).raise_for_status()

    def last_polled_at(self, company: ObjectId, connection_id: str) -> str | None:
        response = self.http.get(f"{self.connections_url}/invoice-connections", timeout=60,
                                 headers={"Authorization": f"Bearer {user_token(str(company))}"})
        response.raise_for_status()
        return next(c for c in response.json() if c["id"] == connection_id)["lastPolledAt"]

    def list_invoices(self, company: ObjectId, **params) -> dict:
        response = self.http.get(f"{self.invoices_url}/api/v3.0/invoices", params=params, timeout=60,
                                 headers={"Authorization": f"Bearer {public_token(str(company))}"})
        response.raise_for_status()
        return response.json()

    def invoices_commands(self) -> float:
        return metric_total(self.invoices_url, "mongo_commands")

    def batches_stored(self) -> float:
        return metric_total(self.invoices_url, "http_requests", route="/internal/invoices/batch", status="200")
