"""The shared gunicorn settings, read in a process of their own (they read the environment and set
prometheus-client's multiprocess directory when imported)."""

from __future__ import annotations

import subprocess
import sys


def _in_a_worker(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], env={"PORT": "8123"}, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def test_a_worker_freezes_what_it_loaded_out_of_the_collectors_reach():
    frozen = _in_a_worker("import gc; from bobdesk_shared import gunicorn_conf as conf; "
                          "before = gc.get_freeze_count(); conf.post_worker_init(None); "
                          "print(before, gc.get_freeze_count())")
    before, after = map(int, frozen.split())
    assert before == 0 and after > 10_000


def test_the_settings_come_from_the_environment():
    settings = _in_a_worker("from bobdesk_shared import gunicorn_conf as conf; "
                            "print(conf.bind, conf.workers, conf.threads, conf.worker_class)")
    assert settings == "127.0.0.1:8123 2 4 gthread"
