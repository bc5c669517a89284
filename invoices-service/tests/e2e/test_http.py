"""End to end over real HTTP: invoices-service under gunicorn, connections-service's authorize-ingest
played by a stub HTTP server (docs/internal-api.md, held to the real service by a contract test
here), the embedded database."""

from __future__ import annotations

import json
import os
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from bobdesk_devtools.stack import Process, free_port, gunicorn_args
from bobdesk_devtools.testing import TEST_ENV, answer_shape, public_token, service_token, serving, user_token, wait_http
from bobdesk_shared.auth import INGEST_WORKER, INVOICES_SERVICE, service_from_token
from bson import ObjectId
from connections_service.app import create_app as connections_app
from connections_service.config import load_settings as connections_settings

pytestmark = pytest.mark.e2e


class ConnectionsStub:
    """authorize-ingest as connections-service answers it (test_the_authorize_ingest_stub_answers_as_the_real_one
    holds it to the real one): the caller's token, then the connection, its state and its fence."""

    def __init__(self):
        self.connections: dict[str, dict] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = stub.authorize(self.headers.get("Authorization", ""), self.path.split("/")[3], body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def authorize(self, authorization: str, connection_id: str, body: dict) -> tuple[int, dict]:
        def error(status: int, code: str) -> tuple[int, dict]:
            return status, {"error": {"code": code, "message": code.replace("_", " ")}}

        try:
            caller = service_from_token(authorization.removeprefix("Bearer "), TEST_ENV["SERVICE_JWT_SECRET"]).name
        except Exception:
            return error(401, "unauthorized")
        entry = self.connections.get(connection_id)
        if caller != INVOICES_SERVICE:
            return error(403, "service_not_allowed")
        if entry is None:
            return error(404, "not_found")
        if not entry["active"]:
            return error(409, "connection_inactive")
        if body["fence"] not in (None, entry["fence"]):
            return error(409, "lease_lost")
        return 200, {"id": connection_id, "client": entry["client"], "provider": "yooz"}

    def add(self, client: str, fence: int = 1) -> str:
        connection = str(ObjectId())
        self.connections[connection] = {"client": client, "fence": fence, "active": True}
        return connection


@pytest.fixture(scope="module")
def stack(mongo_uri, mongo_client, tmp_path_factory):
    stub = ConnectionsStub()
    suffix = uuid.uuid4().hex[:10]
    env = {**TEST_ENV, "MONGO_URI": mongo_uri, "INVOICES_DB": f"t_inv_e2e_{suffix}",
           "PLATFORM_DB": f"t_plat_e2e_{suffix}", "CONNECTIONS_URL": stub.url}
    port = free_port()
    args, extra = gunicorn_args("invoices_service.app:create_app()", port)
    process = Process(args, {**os.environ, **env, **extra}, tmp_path_factory.mktemp("e2e") / "invoices.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", 60)
        yield url, stub, mongo_client[env["PLATFORM_DB"]]
    finally:
        process.stop()
        stub.server.shutdown()
        mongo_client.drop_database(env["INVOICES_DB"])
        mongo_client.drop_database(env["PLATFORM_DB"])


def list_queries(url) -> tuple[float, float]:
    """(count, seconds) of the list queries so far, from /metrics."""
    samples = dict(line.rsplit(" ", 1) for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines()
                   if line.startswith("invoices_list_query_duration_seconds_"))
    return (float(samples["invoices_list_query_duration_seconds_count"]),
            float(samples["invoices_list_query_duration_seconds_sum"]))


def test_each_list_page_times_its_query_driver_included(stack):
    url, _, _ = stack
    public = {"Authorization": f"Bearer {public_token(str(ObjectId()))}"}
    count, seconds = list_queries(url)
    for _ in range(3):
        assert requests.get(f"{url}/api/v3.0/invoices", headers=public, timeout=5).status_code == 200
    after_count, after_seconds = list_queries(url)
    assert after_count == count + 3 and after_seconds > seconds


def batch(url, connection, invoices, fence=1, cancellations=()):
    return requests.post(f"{url}/internal/invoices/batch", timeout=30,
                         json={"connection": connection, "fence": fence, "invoices": invoices,
                               "cancellations": list(cancellations)},
                         headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"})


def test_operational_routes(stack):
    url, _, _ = stack
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    assert "http_requests_total" in requests.get(f"{url}/metrics", timeout=5).text
    paths = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    assert set(paths) == {"/api/v3.0/invoices", "/api/v3.0/invoices/{invoice_id}", "/invoices",
                          "/invoices/{invoice_id}", "/invoices/{invoice_id}/link"}
    internal = requests.get(f"{url}/internal/openapi.json", timeout=5).json()["paths"]
    assert set(internal) == {"/internal/invoices/batch", "/internal/invoices/listing-complete",
                             "/internal/invoices/reconcile"}


def test_ingest_read_link_and_isolation(stack, make_invoice, make_siret):
    url, stub, platform = stack
    client, other = ObjectId(), ObjectId()
    connection = stub.add(str(client))
    contractor = platform.contractors.insert_one({"client": client, "partners": [], "name": "ACME",
                                                  "siret": make_siret("732829320"), "isActive": True}).inserted_id
    ticket = platform.tickets.insert_one({"client": client, "number": "T-1", "contractor": None}).inserted_id
    invoices = [make_invoice("A", supplier_siret=make_siret("732829320"), order_reference="T-1",
                             amounts={"ht": "12345678901234.56", "tva": "0.10", "ttc": "12345678901234.66"}),
                *[make_invoice(f"P-{i}") for i in range(5)]]
    answer = batch(url, connection, invoices)
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == 6
    assert batch(url, connection, invoices).json()["unchanged"] == 6
    assert batch(url, connection, invoices, fence=7).status_code == 409
    assert batch(url, str(ObjectId()), invoices).status_code == 404

    public = {"Authorization": f"Bearer {public_token(client)}"}
    response = requests.get(f"{url}/api/v3.0/invoices", params={"invoice_platform_id": "A"}, headers=public,
                            timeout=5)
    assert b'"ht":12345678901234.56,"tva":0.10' in response.content
    invoice = json.loads(response.content, parse_float=Decimal)["invoices"][0]
    assert invoice["supplier_id"] == str(contractor) and invoice["ticket_id"] == str(ticket)

    walked, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{url}/api/v3.0/invoices", params=params, headers=public, timeout=5).json()
        if not page["invoices"]:
            assert page["cursor"] is None
            break
        walked += [item["invoice_platform_id"] for item in page["invoices"]]
        cursor = page["cursor"]
    assert walked == ["A", "P-0", "P-1", "P-2", "P-3", "P-4"]
    assert requests.get(f"{url}/api/v3.0/invoices", params={"limit": 500}, headers=public,
                        timeout=5).status_code == 400

    jarvis = requests.Session()
    jarvis.cookies.set("session", user_token(client))
    unlinked = jarvis.delete(f"{url}/invoices/{invoice['id']}/link", timeout=5)
    assert unlinked.status_code == 200 and unlinked.json()["invoice"]["state"] == "ticket_unmatched"
    reconcile = requests.post(f"{url}/internal/invoices/reconcile", json={"client": str(client)}, timeout=5,
                              headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"})
    assert reconcile.status_code == 200
    again = requests.get(f"{url}/api/v3.0/invoices/{invoice['id']}", headers=public, timeout=5).json()
    assert again["invoice"]["ticket_id"] is None  # the manual unlink stands

    outsider = {"Authorization": f"Bearer {public_token(other)}"}
    assert requests.get(f"{url}/api/v3.0/invoices/{invoice['id']}", headers=outsider, timeout=5).status_code == 404
    assert requests.get(f"{url}/api/v3.0/invoices", headers=outsider, timeout=5).json() == {
        "cursor": None, "invoices": []}
    outsider_jarvis = {"Authorization": f"Bearer {user_token(other)}"}
    assert requests.post(f"{url}/invoices/{invoice['id']}/link", json={"ticket": str(ticket)},
                         headers=outsider_jarvis, timeout=5).status_code == 404


class RealAuthorizer:
    """connections-service itself: a connection created by its public API, leased by a worker's claim."""

    def __init__(self, url: str):
        self.url = url

    def add(self, client: str) -> tuple[str, int]:
        created = requests.post(f"{self.url}/invoice-connections", timeout=10,
                                json={"provider": "yooz", "apiKey": "yz_sk_contract_0123456789"},
                                headers={"Authorization": f"Bearer {user_token(client)}"})
        assert created.status_code == 201, created.text
        claimed = requests.post(f"{self.url}/internal/connections/claim", timeout=10,
                                json={"worker": "worker-1", "lease_seconds": 60},
                                headers={"Authorization": f"Bearer {service_token(INGEST_WORKER)}"})
        assert claimed.json()["connection"]["id"] == created.json()["id"], claimed.text
        return created.json()["id"], claimed.json()["connection"]["fence"]

    def deactivate(self, client: str, connection_id: str) -> None:
        response = requests.patch(f"{self.url}/invoice-connections/{connection_id}", json={"active": False},
                                  headers={"Authorization": f"Bearer {user_token(client)}"}, timeout=10)
        assert response.status_code == 200, response.text


class StubbedAuthorizer:
    def __init__(self, stub: ConnectionsStub):
        self.stub, self.url = stub, stub.url

    def add(self, client: str) -> tuple[str, int]:
        return self.stub.add(client, fence=3), 3

    def deactivate(self, _client: str, connection_id: str) -> None:
        self.stub.connections[connection_id]["active"] = False


def authorize_conversation(target) -> list[tuple]:
    """Each step's (name, status, shape, whether a 200 names the right company), as invoices-service asks."""
    client = str(ObjectId())
    connection, fence = target.add(client)
    answers = []

    def ask(step: str, connection_id: str, fence: int | None, caller: str | None = INVOICES_SERVICE) -> None:
        headers = {"Authorization": f"Bearer {service_token(caller)}"} if caller else {}
        response = requests.post(f"{target.url}/internal/connections/{connection_id}/authorize-ingest",
                                 json={"fence": fence}, headers=headers, timeout=10)
        answers.append((step, *answer_shape(response),
                        response.status_code != 200 or response.json()["client"] == client))

    ask("the lease's fence", connection, fence)
    ask("no fence (a webhook)", connection, None)
    ask("a stale fence", connection, fence + 1)
    ask("an unknown connection", str(ObjectId()), fence)
    ask("no token", connection, fence, caller=None)
    ask("the worker's token", connection, fence, caller=INGEST_WORKER)
    target.deactivate(client, connection)
    ask("an inactive connection", connection, None)
    return answers


def test_the_authorize_ingest_stub_answers_as_the_real_one(stack, test_env):
    _, stub, _ = stack
    with serving(connections_app(connections_settings(test_env))) as url:
        assert authorize_conversation(StubbedAuthorizer(stub)) == authorize_conversation(RealAuthorizer(url))
