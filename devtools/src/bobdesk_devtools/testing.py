"""pytest plugin shared by every component's tests (enabled by the root conftest.py).

- `mongo_uri`: one real MongoDB wire-protocol server per test session — the
  embedded SecantusDB on a free port — or `TEST_MONGO_URI` when set (real mongod).
- `mongo_client`, `fresh_db_names`: an isolated database name set per test.
- `CommandCounter`: pymongo command monitoring, to count round trips.
- `QueryRecorder`: the queries sent to a collection, explained: none may scan the collection.
- `start_process` / `wait_http`: real processes for e2e tests (`bobdesk_devtools.stack` starts them).
- token minting helpers for the three kinds.
- `serving` / `answer_shape`: an app on a thread, and what a stub must answer like the real service.
- a failing test's report ends with the warnings and errors of every stack still running: what a
  poller or a service said is what explains a time-out in an e2e test.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import Counter

import pytest
import requests
from bobdesk_shared import auth
from bobdesk_shared.mongo import DRIVER_COMMANDS
from pymongo import MongoClient, monitoring
from werkzeug.serving import make_server

from bobdesk_devtools import stack
from bobdesk_devtools.stack import Process, free_port, mongo_uri_for, start_embedded_mongo

TEST_ENV = {
    "ENV": "test",
    "JWT_SECRET": "test-jwt-secret-0123456789abcdef0123456789",
    "SERVICE_JWT_SECRET": "test-service-jwt-secret-0123456789abcdef",
    "CREDENTIALS_KEYS": "t1:dGVzdC1vbmx5LWNyZWRlbnRpYWxzLWtleS0zMmJ5dGU=",
    "LOG_LEVEL": "INFO",
}


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def wait_http(url: str, timeout: float = 30.0) -> None:
    def up():
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    wait_until(up, timeout, 0.1, url)


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends (register with `event_listeners=[counter]`)."""

    def __init__(self):
        self.commands: list[tuple[str, str]] = []

    def started(self, event):
        if event.command_name not in DRIVER_COMMANDS:
            self.commands.append((event.command_name, event.database_name))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def reset(self) -> None:
        self.commands.clear()

    def by_name(self) -> Counter:
        return Counter(name for name, _ in self.commands)

    def __len__(self) -> int:
        return len(self.commands)


class QueryRecorder(monitoring.CommandListener):
    """Records the queries a client sends to one collection, to explain them afterwards (`plans`)."""

    EXPLAINABLE = frozenset({"find", "aggregate", "update", "delete", "findAndModify", "distinct", "count"})
    SESSION_FIELDS = frozenset({"lsid", "$db", "txnNumber", "$clusterTime", "writeConcern", "$readPreference"})

    def __init__(self, collection: str):
        self.collection = collection
        self.commands: list[dict] = []

    def started(self, event):
        if event.command_name in self.EXPLAINABLE and event.command.get(event.command_name) == self.collection:
            self.commands.append({k: v for k, v in event.command.items() if k not in self.SESSION_FIELDS})

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def names(self) -> set[str]:
        return {next(iter(command)) for command in self.commands}

    def plans(self, db) -> list[tuple[dict, str]]:
        """(command, winning plan as JSON) for every recorded command; an update's statements are
        explained as the find their filter and hint make, because the embedded server explains every
        update as a collection scan, whatever it runs."""
        explained = []
        for command in self.commands:
            if "updates" in command:
                singles = [{"find": command["update"], "filter": statement["q"],
                            **({"hint": statement["hint"]} if "hint" in statement else {})}
                           for statement in command["updates"]]
            else:
                singles = [command]
            for single in singles:
                plan = db.command("explain", single)["queryPlanner"]["winningPlan"]
                explained.append((single, json.dumps(plan, default=str)))
        return explained

    def assert_indexed(self, db) -> None:
        for command, plan in self.plans(db):
            if not _by_id(command):
                assert "COLLSCAN" not in plan, (command, plan)


def _by_id(command: dict) -> bool:
    """An `_id` equality or `$in`: a point lookup on every server (the embedded server's explain
    reports it as a scan when other fields are named, while it reads one document)."""
    condition = (command.get("filter") or command.get("query") or {}).get("_id")
    return condition is not None and (not isinstance(condition, dict) or set(condition) <= {"$eq", "$in"})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for running in list(stack.RUNNING):
            excerpt = running.log_excerpt()
            if excerpt:
                report.sections.append((f"warnings and errors of the stack in {running.workdir}", excerpt))


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    external = os.environ.get("TEST_MONGO_URI")
    if external:
        yield external
        return
    workdir = tmp_path_factory.mktemp("mongo")
    port = free_port()
    process = start_embedded_mongo(port, workdir / "data", workdir / "server.log")
    try:
        yield mongo_uri_for(port)
    finally:
        process.stop(10)


@pytest.fixture(scope="session")
def mongo_client(mongo_uri):
    client = MongoClient(mongo_uri, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def db_names(mongo_client):
    """Fresh database names for one test (dropped afterwards), as env variables."""
    suffix = uuid.uuid4().hex[:10]
    names = {
        "CONNECTIONS_DB": f"t_conn_{suffix}",
        "INVOICES_DB": f"t_inv_{suffix}",
        "INGEST_DB": f"t_ing_{suffix}",
        "PLATFORM_DB": f"t_plat_{suffix}",
    }
    yield names
    for name in names.values():
        mongo_client.drop_database(name)


@pytest.fixture
def test_env(mongo_uri, db_names):
    """The environment a component under test runs with."""
    return {**TEST_ENV, **db_names, "MONGO_URI": mongo_uri}


def user_token(client, permissions=("accounting",), *, user_id="user-1", ttl_seconds=600) -> str:
    return auth.mint_user_token(TEST_ENV["JWT_SECRET"], user_id=user_id, client=client,
                                permissions=list(permissions), ttl_seconds=ttl_seconds)


def public_token(client, scope="invoices:read", *, ttl_seconds=600) -> str:
    return auth.mint_public_token(TEST_ENV["JWT_SECRET"], client=client, scope=scope, ttl_seconds=ttl_seconds)


def service_token(name="test", *, ttl_seconds=600) -> str:
    return auth.mint_service_token(TEST_ENV["SERVICE_JWT_SECRET"], name=name, ttl_seconds=ttl_seconds)


@pytest.fixture
def start_process(tmp_path):
    """Start real processes for a test; all are stopped when it ends."""
    started: list[Process] = []

    def start(args: list[str], env: dict, name: str = "proc") -> Process:
        full_env = {**os.environ, **env}
        proc = Process(args, full_env, tmp_path / f"{name}-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()



@contextlib.contextmanager
def serving(app):
    """A WSGI app on a free loopback port, on a thread of this process; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def answer_shape(response: requests.Response):
    """What a contract pins of an HTTP answer, to compare a stub with the real service: the status,
    an error's code, and the JSON body's keys and value types (not the values)."""
    if not response.content:
        return response.status_code, None
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return response.status_code, response.headers.get("Content-Type")
    return response.status_code, _shape(response.json())


def _shape(value):
    if isinstance(value, dict):
        if set(value) == {"error"}:
            return {"error": value["error"]["code"]}
        return {key: _shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__
