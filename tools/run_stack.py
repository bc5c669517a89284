"""`make run`: the whole system in the foreground; Ctrl-C stops all of it.

Starts the embedded MongoDB unless MONGO_URI is set and each provider simulator unless
its base URL (YOOZ_BASE_URL, PENNYLANE_BASE_URL) is set, then every component that exists, waits for each to be
ready, seeds the demo (bobdesk_devtools.demo) and prints the URLs and demo tokens.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# Each provider simulator, started unless its base URL variable points at the provider.
SIMULATORS = (
    ("Yooz simulator", "bobdesk_simulators.yooz", "YOOZ_SIM_PORT", 8090, "YOOZ_BASE_URL"),
    ("Pennylane simulator", "bobdesk_simulators.pennylane", "PENNYLANE_SIM_PORT", 8091, "PENNYLANE_BASE_URL"),
)
BIN = Path(sys.executable).parent
GUNICORN = [str(BIN / "gunicorn"), "-c", "python:bobdesk_shared.gunicorn_conf"]


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def wait_ready(name: str, url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a process exited while {name} was starting; see the output above")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} was not ready at {url} after {timeout:.0f}s")


def main() -> None:
    env = dict(os.environ)
    env.setdefault("LOG_LEVEL", "WARNING")
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list[str], extra: dict | None = None) -> None:
        print(f"starting {name}")
        procs.append(subprocess.Popen(argv, cwd=ROOT, env={**env, **(extra or {})}))

    def stop(*_):
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    if not env.get("MONGO_URI"):
        mongo_port = port("EMBEDDED_MONGO_PORT", 27117)
        env["MONGO_URI"] = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
        (ROOT / ".data/mongo").mkdir(parents=True, exist_ok=True)
        start("embedded MongoDB", [str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(mongo_port),
                                   "--storage-path", str(ROOT / ".data/mongo"), "--log-level", "WARNING"])
        from bobdesk_devtools.testing import wait_until
        from pymongo import MongoClient

        client = MongoClient(env["MONGO_URI"], serverSelectionTimeoutMS=500)
        wait_until(lambda: client.admin.command("ping"), 60, 0.2, "embedded MongoDB")

    urls: dict[str, str] = {}
    for name, module, port_var, default, base_url_var in SIMULATORS:
        if not env.get(base_url_var) and exists(module):
            env[base_url_var] = f"http://127.0.0.1:{port(port_var, default)}"
            start(name, [str(BIN / "python"), "-m", module])
            wait_ready(name, env[base_url_var] + "/healthz", procs)
            urls[name] = env[base_url_var]

    http_components = [
        ("connections-service", "connections_service.app", "CONNECTIONS_PORT", 8001),
        ("invoices-service", "invoices_service.app", "INVOICES_PORT", 8002),
        ("webhook receiver", "ingest_worker.webhooks.app", "WEBHOOKS_PORT", 8003),
    ]
    for name, module, port_var, default in http_components:
        if not exists(module):
            print(f"({name} does not exist yet; skipped)")
            continue
        p = port(port_var, default)
        start(name, [*GUNICORN, f"{module}:create_app()"], {"PORT": str(p)})
        wait_ready(name, f"http://127.0.0.1:{p}/readyz", procs)
        urls[name] = f"http://127.0.0.1:{p}  (docs: /docs)"

    if exists("bobdesk_devtools.demo") and "YOOZ_BASE_URL" in env:
        subprocess.run([str(BIN / "python"), "-m", "bobdesk_devtools.demo"], cwd=ROOT, env=env, check=True)
    if exists("ingest_worker.poller"):
        start("poller", [str(BIN / "python"), "-m", "ingest_worker.poller"])

    print("\nBob! Desk invoice platform is running (Ctrl-C stops everything):")
    print(f"  MongoDB               {env['MONGO_URI']}")
    for name, url in urls.items():
        print(f"  {name:<21} {url}")
    sys.stdout.flush()
    while True:
        for proc in procs:
            if proc.poll() is not None:
                print(f"a process exited ({' '.join(map(str, proc.args[:3]))}...); stopping", file=sys.stderr)
                stop()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
