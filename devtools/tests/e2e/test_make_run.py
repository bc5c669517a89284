"""`make run` itself, as a new developer meets it: a fresh clone, free ports, Ctrl-C.

The clone is `git clone` of this repository's HEAD (committed work only), with no
.data. Installing the virtualenv takes minutes, so the clone's Makefile is pointed at
the already-installed one (`VENV=`, and `-o` so that make does not re-install into
it because the clone's files are newer than its stamp); PYTHONPATH puts the clone's
own source folders first, so every process runs the clone's code, and the virtualenv
contributes only the third-party packages. What this test does not cover is
tools/install.sh itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from bobdesk_devtools.stack import HTTP_COMPONENTS, MONGO_PORT, POLLER_PORT, SIMULATORS, free_port
from bobdesk_devtools.testing import wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
VENV = Path(sys.executable).parent.parent
PORT_VARIABLES = (MONGO_PORT[0], POLLER_PORT[0], *(s.port_variable for s in SIMULATORS),
                  *(c.port_variable for c in HTTP_COMPONENTS))
# What would point the stack elsewhere than at the processes it starts.
OUTSIDE = {"MONGO_URI", "CONNECTIONS_URL", "INVOICES_URL", "MAKEFLAGS", "MAKELEVEL", "MFLAGS",
           *(s.base_url_variable for s in SIMULATORS)}


class Console:
    """The output of a process, read line by line on a thread."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(process.stdout.readline, "")),
                                       daemon=True)
        self.thread.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_under(folder: Path) -> list[str]:
    """Processes whose working directory or command line is inside `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture
def clone(tmp_path):
    path = tmp_path / "bobdesk"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(path)], check=True, timeout=60)
    assert not (path / ".data").exists() and not (path / ".venv").exists()
    return path


def test_make_run_on_a_fresh_clone_serves_the_demo_and_ctrl_c_leaves_nothing(clone):
    ports = {variable: free_port() for variable in PORT_VARIABLES}
    sources = [str(src) for src in sorted(clone.glob("*/src"))]
    env = {**{k: v for k, v in os.environ.items() if k not in OUTSIDE},
           **{k: str(v) for k, v in ports.items()}, "PYTHONPATH": os.pathsep.join(sources)}
    make = subprocess.Popen(["make", "-o", f"{VENV}/.installed", "run", f"VENV={VENV}"], cwd=clone, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    console = Console(make)
    try:
        wait_until(lambda: "export PUBLIC_TOKEN=" in console.text or make.poll() is not None, 60, 0.2,
                   "the printed public token")
        assert make.poll() is None, console.text
        token = re.search(r"export PUBLIC_TOKEN=(\S+)", console.text).group(1)
        assert f"http://127.0.0.1:{ports['INVOICES_PORT']}" in console.text
        assert "{" not in console.text.split("export PUBLIC_TOKEN")[0], "a JSON log line on the console"

        def demo_invoices():
            response = requests.get(f"http://127.0.0.1:{ports['INVOICES_PORT']}/api/v3.0/invoices",
                                    headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()["invoices"]

        listed = wait_until(demo_invoices, 30, 0.5, "demo invoices")
        assert {invoice["provider"] for invoice in listed} <= {"yooz", "pennylane"}
        # The checks after Ctrl-C see these processes and ports while they run.
        assert len(processes_under(clone)) >= len(PORT_VARIABLES)
        assert [variable for variable, port in ports.items() if not listening(port)] == []
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole foreground group
        make.wait(60)
        console.thread.join(10)
    assert "Traceback" not in console.text, console.text
    assert "stopped." in console.text, console.text
    assert processes_under(clone) == [], console.text
    assert [variable for variable, port in ports.items() if listening(port)] == []
    assert (clone / ".data/logs/invoices-service.log").stat().st_size > 0
