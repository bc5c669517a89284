"""`make run`: the whole system in the foreground; Ctrl-C stops all of it.

The processes are started by bobdesk_devtools.stack (the launcher the e2e tests and
bench/ use too), on the ports of the environment or the defaults, with the data
under .data/ and every component's JSON log in .data/logs/<component>.log. Once all
answer, the demo is seeded (bobdesk_devtools.demo) and the console shows the URLs,
the demo company, its tokens and commands to paste.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bobdesk_devtools.stack import Stack, StartFailed, log_tail

ROOT = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT_SECONDS = 120


def _interrupt(*_args) -> None:
    # Once: a second Ctrl-C must not cut the shutdown short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def seed_demo(stack: Stack) -> str:
    """The demo's console text; its log goes to logs/demo.log."""
    log_path = stack.logs / "demo.log"
    print("  seeding the demo company")
    with open(log_path, "wb") as log:
        done = subprocess.run([sys.executable, "-m", "bobdesk_devtools.demo"], env=stack.env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                              timeout=DEMO_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        raise StartFailed("demo seeder", f"exited with code {done.returncode}", log_path)
    return done.stdout


def summary(stack: Stack, demo: str) -> str:
    logs = stack.logs.relative_to(ROOT) if stack.logs.is_relative_to(ROOT) else stack.logs
    lines = ["", "Bob! Desk is running. Ctrl-C stops everything.", ""]
    lines += [f"  {name:<20} {url}" for name, url in stack.urls.items()]
    lines += ["", f"  API documentation:   {stack.url('invoices-service')}/docs, "
              f"{stack.url('connections-service')}/docs, {stack.url('webhook-receiver')}/docs",
              f"  logs (JSON lines):   {logs}/<component>.log", demo.rstrip(), ""]
    return "\n".join(lines)


def watch(stack: Stack) -> int:
    """Until a process exits on its own: then say which, with its last log lines."""
    while True:
        for process in stack.processes:
            if not process.running():
                print(f"\n{process.name} exited with code {process.popen.returncode}; stopping everything\n"
                      f"--- last lines of {process.log_path} ---\n{log_tail(process.log_path)}", file=sys.stderr)
                return 1
        time.sleep(0.5)


def main() -> int:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = Stack(os.environ, ROOT / ".data", on_start=lambda name: print(f"  starting {name}", flush=True))
    print(f"Bob! Desk: starting every component (logs in {stack.logs}/)", flush=True)
    try:
        stack.start()
        print(summary(stack, seed_demo(stack)), flush=True)
        return watch(stack)
    except StartFailed as failure:
        print(f"\n{failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
