"""The whole system as local processes: the one launcher behind `make run`, the e2e tests and bench/.

`Stack(env, workdir).start()` starts, in this order, each stage waiting for the
previous one to answer:
1. the embedded MongoDB-compatible server, unless MONGO_URI is set;
2. each provider simulator of `SIMULATORS`, unless its base URL variable is set;
3. the HTTP components of `HTTP_COMPONENTS` under gunicorn;
4. the poller (optional: tests and benchmarks start their own).

Every port comes from the environment, else from the table's default; with
`free_ports` (tests, benchmarks) every port is a free one and the services' URLs are
this stack's, whatever the environment says. Every process runs in its own process group,
its output in `workdir/logs/<name>.log`. Ready means answering: a probe that raises
(a refused connection, a MongoDB server selection time-out) is one more attempt
until the deadline. When a component exits or misses its deadline, `start` stops
everything already started and raises `StartFailed` with that component's last log
lines; `stop` ends every process group, children included. `RUNNING` holds the stacks started
and not yet stopped, so a failing test can show what their components said (`log_excerpt`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import requests
from pymongo import MongoClient
from pymongo.errors import PyMongoError

START_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Simulator:
    """A provider simulator, started unless `base_url_variable` points at the provider."""

    name: str
    module: str
    port_variable: str
    default_port: int
    base_url_variable: str


@dataclasses.dataclass(frozen=True)
class HttpComponent:
    name: str
    app: str
    port_variable: str
    default_port: int


SIMULATORS = (
    Simulator("yooz-sim", "bobdesk_simulators.yooz", "YOOZ_SIM_PORT", 8090, "YOOZ_BASE_URL"),
    Simulator("pennylane-sim", "bobdesk_simulators.pennylane", "PENNYLANE_SIM_PORT", 8091, "PENNYLANE_BASE_URL"),
)
HTTP_COMPONENTS = (
    HttpComponent("connections-service", "connections_service.app:create_app()", "CONNECTIONS_PORT", 8001),
    HttpComponent("invoices-service", "invoices_service.app:create_app()", "INVOICES_PORT", 8002),
    HttpComponent("webhook-receiver", "ingest_worker.webhooks.app:create_app()", "WEBHOOKS_PORT", 8003),
)
MONGO_PORT = ("EMBEDDED_MONGO_PORT", 27117)
POLLER_PORT = ("WORKER_METRICS_PORT", 8004)
QUIET_LEVELS = frozenset({"debug", "info"})


class StartFailed(RuntimeError):
    """A component did not become ready; the message names it and shows its last log lines."""

    def __init__(self, component: str, reason: str, log_path: Path | None):
        self.component = component
        tail = log_tail(log_path) if log_path else ""
        where = f"\n--- last lines of {log_path} ---\n{tail}" if tail else ""
        super().__init__(f"{component} failed to start: {reason}{where}")


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def is_notable(line: str) -> bool:
    """A log line worth showing when something failed: a warning or worse, or any line that is not
    one of our JSON records (a traceback, a crash before logging was set up)."""
    try:
        record = json.loads(line)
    except ValueError:
        return bool(line.strip())
    return not isinstance(record, dict) or record.get("level") not in QUIET_LEVELS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process in its own process group (so its children stop with it), output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path, cwd: str | Path | None = None,
                 name: str | None = None):
        self.args, self.log_path, self.name = args, log_path, name or Path(args[0]).name
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed by stop()
        self.stopped = False
        self.popen = subprocess.Popen(args, env=dict(env), cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        """Alive; an exited child is left unreaped (a zombie), so its group id stays ours to signal."""
        if self.popen.returncode is not None:
            return False
        return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None

    def signal(self, sig: int) -> None:
        # Once the child is reaped its id may be recycled as another process group's (pid_max is
        # small): a signal then could stop a stranger, so it is not sent.
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def _exits_within(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the group, SIGKILL after `timeout`; the group's leftovers are killed either way."""
        if self.stopped:
            return self.popen.returncode
        self.stopped = True
        if self.running():
            self.signal(signal.SIGTERM)
            if not self._exits_within(timeout):
                self.signal(signal.SIGKILL)
                self._exits_within(5)
        self.signal(signal.SIGKILL)  # a child that outlived its parent, while the unreaped parent holds the id
        if self.popen.returncode is None:
            self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def mongo_answers(uri: str) -> bool:
    client = MongoClient(uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def wait_ready(process: Process, probe: Callable[[], bool], what: str,
               timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Until `probe()` is true; `StartFailed` when the process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not probe():
        if not process.running():
            raise StartFailed(process.name, f"exited with code {process.popen.returncode}", process.log_path)
        if time.monotonic() > deadline:
            raise StartFailed(process.name, f"{what} did not answer within {timeout:.0f} s", process.log_path)
        time.sleep(0.2)


def mongo_args(port: int, storage: Path) -> list[str]:
    exe = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
    return [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage), "--log-level", "WARNING"]


def mongo_uri_for(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def start_embedded_mongo(port: int, storage: Path, log_path: Path, cwd: Path | None = None) -> Process:
    """The embedded server on `port`, once it answers a ping."""
    storage.mkdir(parents=True, exist_ok=True)
    process = Process(mongo_args(port, storage), os.environ, log_path, cwd, name="embedded MongoDB")
    try:
        wait_ready(process, lambda: mongo_answers(mongo_uri_for(port)), f"a ping on port {port}")
    except BaseException:
        process.stop()
        raise
    return process


def gunicorn_args(app: str, port: int, *, workers: int = 2, threads: int = 4,
                  metrics_dir: Path | None = None) -> tuple[list[str], dict]:
    """argv and extra env to serve `app` ('pkg.module:create_app()') under gunicorn on loopback."""
    exe = str(Path(sys.executable).with_name("gunicorn"))
    extra = {"PORT": str(port), "BIND_HOST": "127.0.0.1", "WEB_CONCURRENCY": str(workers),
             "GUNICORN_THREADS": str(threads)}
    # Its own directory for prometheus-client's multiprocess files: one inherited from the caller's
    # environment would mix another server's metrics into this one's.
    extra["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir or tempfile.mkdtemp(prefix="prometheus-"))
    return [exe, "-c", "python:bobdesk_shared.gunicorn_conf", app], extra


class Pending(NamedTuple):
    """A started process, and how to know it answers."""

    process: Process
    probe: Callable[[], bool]
    what: str
    url: str


class Stack:
    """The system's processes on one workdir (logs/, mongo/, prometheus/ under it)."""

    def __init__(self, env: Mapping[str, str], workdir: Path, *, free_ports: bool = False, workers: int = 2,
                 threads: int = 8, on_start: Callable[[str], None] | None = None):
        self.workdir, self.free_ports = Path(workdir), free_ports
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.workers, self.threads = workers, threads
        self.on_start = on_start or (lambda _name: None)
        self.processes: list[Process] = []
        self.urls: dict[str, str] = {}
        self.env = dict(env)
        self.simulators = [s for s in SIMULATORS if not self.env.get(s.base_url_variable)]
        self.embedded_mongo = not self.env.get("MONGO_URI")
        if self.embedded_mongo:
            self.env["MONGO_URI"] = mongo_uri_for(self._port(*MONGO_PORT))
        for simulator in self.simulators:
            self.env[simulator.base_url_variable] = self._url(simulator.port_variable, simulator.default_port)
        for component in HTTP_COMPONENTS:
            self._port(component.port_variable, component.default_port)
        for variable, port in (("CONNECTIONS_URL", "CONNECTIONS_PORT"), ("INVOICES_URL", "INVOICES_PORT")):
            if free_ports or not self.env.get(variable):
                self.env[variable] = f"http://127.0.0.1:{self.env[port]}"

    def _port(self, variable: str, default: int) -> int:
        if self.free_ports or not self.env.get(variable):
            self.env[variable] = str(free_port() if self.free_ports else default)
        return int(self.env[variable])

    def _url(self, variable: str, default: int) -> str:
        return f"http://127.0.0.1:{self._port(variable, default)}"

    @property
    def mongo_uri(self) -> str:
        return self.env["MONGO_URI"]

    def url(self, name: str) -> str:
        return self.urls[name]

    # --- starting ---------------------------------------------------------------------------

    def spawn(self, name: str, args: list[str], extra: Mapping[str, str] | None = None) -> Process:
        """One more process of the stack, logging to logs/<name>.log (a repeated name gets a number)."""
        log_path = self.logs / f"{name}.log"
        if any(p.log_path == log_path for p in self.processes):
            log_path = self.logs / f"{name}-{len(self.processes)}.log"
        log_path.write_bytes(b"")
        self.on_start(name)
        process = Process(args, {**self.env, **(extra or {})}, log_path, cwd=self.workdir, name=name)
        self.processes.append(process)
        return process

    def start(self, *, poller: bool = True) -> Stack:
        """Every component, each stage ready before the next; on failure everything started is stopped."""
        RUNNING.add(self)
        try:
            stage = []
            if self.embedded_mongo:
                port = int(self.env["EMBEDDED_MONGO_PORT"])
                # The data outlives a run (`make run` keeps its demo); a test's workdir is new anyway.
                mongo = self.spawn("mongodb", mongo_args(port, self._fresh_dir("mongo", keep=True)))
                stage.append(Pending(mongo, lambda: mongo_answers(self.mongo_uri), "a ping", self.mongo_uri))
            for simulator in self.simulators:
                url = self.env[simulator.base_url_variable]
                process = self.spawn(simulator.name, [sys.executable, "-m", simulator.module])
                stage.append(Pending(process, lambda u=url: http_ok(f"{u}/healthz"), f"{url}/healthz", url))
            self._wait(stage)
            self._wait([self._start_http(component) for component in HTTP_COMPONENTS])
            if poller:
                self.start_poller(port=self._port(*POLLER_PORT))
        except BaseException:
            self.stop()
            raise
        return self

    def _start_http(self, component: HttpComponent) -> Pending:
        port = int(self.env[component.port_variable])
        # A previous run's metric files would add to this run's counts.
        args, extra = gunicorn_args(component.app, port, workers=self.workers, threads=self.threads,
                                    metrics_dir=self._fresh_dir(f"prometheus/{component.name}"))
        url = f"http://127.0.0.1:{port}"
        process = self.spawn(component.name, args, extra)
        return Pending(process, lambda: http_ok(f"{url}/readyz"), f"{url}/readyz", url)

    def _wait(self, stage: list[Pending]) -> None:
        for pending in stage:
            wait_ready(pending.process, pending.probe, pending.what)
            self.urls[pending.process.name] = pending.url

    def _fresh_dir(self, name: str, keep: bool = False) -> Path:
        path = self.workdir / name
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start_poller(self, port: int | None = None, **extra: str) -> Process:
        """A poller serving /healthz on `port` (a free one by default), once it answers."""
        port = port or free_port()
        process = self.spawn("poller", [sys.executable, "-m", "ingest_worker.poller"],
                             {"WORKER_METRICS_PORT": str(port), **extra})
        process.metrics_url = f"http://127.0.0.1:{port}"
        wait_ready(process, lambda: http_ok(f"{process.metrics_url}/healthz"), f"{process.metrics_url}/healthz")
        self.urls.setdefault("poller", process.metrics_url)
        return process

    # --- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Every process, the last started first (the database last)."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        RUNNING.discard(self)

    def log_excerpt(self, lines_per_log: int = 30) -> str:
        """The notable lines (`is_notable`) of every log, the last `lines_per_log` of each."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            with contextlib.suppress(OSError):
                notable = [line for line in path.read_text(errors="replace").splitlines() if is_notable(line)]
                if notable:
                    parts.append(f"--- {path} ---\n" + "\n".join(notable[-lines_per_log:]))
        return "\n".join(parts)


RUNNING: set[Stack] = set()
