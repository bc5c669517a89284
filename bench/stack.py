"""The system under measurement: real processes on the embedded MongoDB (or MONGO_URI).

The Yooz and Pennylane simulators, connections-service, invoices-service and the webhook
receiver run under gunicorn as in production; pollers are started per scenario
so each one's peak memory is its own. Every process logs to a file under the
run's work directory (printed when something fails).
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import requests
from bobdesk_devtools.testing import (
    TEST_ENV,
    Process,
    free_port,
    gunicorn_args,
    public_token,
    start_embedded_mongo,
    user_token,
    wait_http,
    wait_until,
)
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient


def metric_total(url: str, family: str, **labels) -> float:
    """The sum of `family`'s samples whose labels include `labels`, read from `url`/metrics."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(sample.value for metrics in text_string_to_metric_families(text) if metrics.name == family
               for sample in metrics.samples
               if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()))


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever held."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


class Stack:
    def __init__(self, workdir: Path, mongo_uri: str | None):
        self.workdir = workdir
        self.processes: list[Process] = []
        self.mongo_process = None
        if mongo_uri is None:
            port = free_port()
            self.mongo_process = start_embedded_mongo(port, str(workdir / "mongo"), str(workdir / "mongo.log"))
            mongo_uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        self.mongo_uri = mongo_uri
        self.mongo = MongoClient(mongo_uri, tz_aware=True)
        suffix = uuid.uuid4().hex[:8]
        self.dbs = {"CONNECTIONS_DB": f"bench_conn_{suffix}", "INVOICES_DB": f"bench_inv_{suffix}",
                    "INGEST_DB": f"bench_ing_{suffix}", "PLATFORM_DB": f"bench_plat_{suffix}"}
        ports = {name: free_port() for name in ("CONNECTIONS_PORT", "INVOICES_PORT", "WEBHOOKS_PORT",
                                                 "YOOZ_SIM_PORT", "PENNYLANE_SIM_PORT")}
        self.sim_url = f"http://127.0.0.1:{ports['YOOZ_SIM_PORT']}"
        self.pennylane_url = f"http://127.0.0.1:{ports['PENNYLANE_SIM_PORT']}"
        self.connections_url = f"http://127.0.0.1:{ports['CONNECTIONS_PORT']}"
        self.invoices_url = f"http://127.0.0.1:{ports['INVOICES_PORT']}"
        self.webhooks_url = f"http://127.0.0.1:{ports['WEBHOOKS_PORT']}"
        self.env = {
            **os.environ, **TEST_ENV, **self.dbs, **{k: str(v) for k, v in ports.items()},
            "LOG_LEVEL": "WARNING", "MONGO_URI": mongo_uri, "YOOZ_BASE_URL": self.sim_url,
            "PENNYLANE_BASE_URL": self.pennylane_url, "PENNYLANE_SIM_DEMO": "0",
            "CONNECTIONS_URL": self.connections_url, "INVOICES_URL": self.invoices_url,
            # One initial sync per connection: no second poll inside a measurement. An idle poller
            # claims every 250 ms (production: 1 s), each claim a database command during the sync.
            "POLL_INTERVAL_SECONDS": "600", "WORKER_LEASE_SECONDS": "60", "WORKER_IDLE_CLAIM_MS": "250",
            # The budget is counted on every request (its cost is measured) but never spent: the
            # webhook figure polls the public list of one company every 10 ms, the load 16 clients.
            "PUBLIC_API_RATE_LIMIT": "1000000/minute",
        }
        self.http = requests.Session()

    @property
    def invoices_db(self):
        return self.mongo[self.dbs["INVOICES_DB"]]

    # --- processes -------------------------------------------------------------------------

    def start(self, name: str, args: list[str], extra: dict | None = None) -> Process:
        process = Process(args, {**self.env, **(extra or {})}, self.workdir / f"{name}-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def start_services(self) -> None:
        self.start("yooz-sim", [sys.executable, "-m", "bobdesk_simulators.yooz"], {"YOOZ_SIM_DEMO": "0"})
        self.start("pennylane-sim", [sys.executable, "-m", "bobdesk_simulators.pennylane"])
        for name, app, url in (("connections", "connections_service.app:create_app()", self.connections_url),
                               ("invoices", "invoices_service.app:create_app()", self.invoices_url),
                               ("webhooks", "ingest_worker.webhooks.app:create_app()", self.webhooks_url)):
            args, extra = gunicorn_args(app, int(url.rsplit(":", 1)[1]), workers=2, threads=8)
            self.start(name, args, extra)
        wait_http(f"{self.sim_url}/healthz", 60)
        wait_http(f"{self.pennylane_url}/healthz", 60)
        for url in (self.connections_url, self.invoices_url, self.webhooks_url):
            wait_until(lambda u=url: self._ready(u), 60, 0.2, f"{url}/readyz")

    def start_poller(self) -> tuple[Process, str]:
        """A poller and the URL of its operations endpoints (/metrics: no database behind it)."""
        port = free_port()
        process = self.start("poller", [sys.executable, "-m", "ingest_worker.poller"],
                             {"WORKER_METRICS_PORT": str(port)})
        wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        return process, f"http://127.0.0.1:{port}"

    @staticmethod
    def stop_process(process: Process) -> None:
        process.signal(signal.SIGTERM)
        process.popen.wait(60)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        for name in self.dbs.values():
            self.mongo.drop_database(name)
        self.mongo.close()
        if self.mongo_process is not None:
            os.killpg(self.mongo_process.pid, signal.SIGTERM)
            self.mongo_process.wait(30)

    @staticmethod
    def _ready(url: str) -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

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
