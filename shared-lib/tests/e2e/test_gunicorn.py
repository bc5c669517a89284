"""The shared gunicorn config, over a real gunicorn: JSON lines only, loopback by default, typed settings."""

import json
import signal
from pathlib import Path

import pytest
import requests
from bobdesk_devtools.stack import free_port, gunicorn_args
from bobdesk_devtools.testing import wait_http, wait_until

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent


def serve(start_process, test_env, **env):
    port = free_port()
    args, extra = gunicorn_args("gunicorn_probe_app:create_app()", port, workers=2, threads=2)
    extra.pop("BIND_HOST")
    process = start_process(args, {**test_env, **extra, "PYTHONPATH": str(HERE), **env}, name="gunicorn")
    return process, port


def json_lines(process) -> list[dict]:
    lines = [line for line in process.output().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert line.startswith("{"), f"not a JSON line: {line!r}"
    return [json.loads(line) for line in lines]


def test_every_line_is_json_gunicorns_own_included_named_after_the_component(start_process, test_env):
    process, port = serve(start_process, test_env)
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
    requests.get(f"http://127.0.0.1:{port}/nothing-here", timeout=5)
    process.signal(signal.SIGTERM)
    assert process.popen.wait(20) == 0
    entries = json_lines(process)
    gunicorn = [e for e in entries if e["logger"] == "gunicorn.error"]
    messages = " | ".join(e["msg"] for e in gunicorn)
    for said in ("Starting gunicorn", f"Listening at: http://127.0.0.1:{port}", "Booting worker",
                 "Handling signal", "Shutting down"):
        assert said in messages
    assert {e["service"] for e in entries} == {"probe-service"}
    assert all({"ts", "level", "service", "logger", "msg"} <= set(e) for e in entries)
    assert [e for e in entries if e["msg"] == "probe ready"]
    request, = [e for e in entries if e["msg"] == "request"]
    assert request["status"] == 404 and request["request_id"]


def test_bind_host_opens_another_address(start_process, test_env):
    process, port = serve(start_process, test_env, BIND_HOST="0.0.0.0")
    wait_until(lambda: f"Listening at: http://0.0.0.0:{port}" in process.output(), timeout=30,
               message="gunicorn listening on every address")


@pytest.mark.parametrize("variable, value, message", [
    ("GUNICORN_TIMEOUT", "soon", "GUNICORN_TIMEOUT: Input should be a valid integer"),
    ("GUNICORN_THREADS", "0", "GUNICORN_THREADS: Input should be greater than or equal to 1"),
    ("PORT", "", "PORT: Field required"),
])
def test_a_bad_server_setting_stops_the_start_with_a_message_naming_it(start_process, test_env, variable, value,
                                                                        message):
    process, _ = serve(start_process, test_env, **{variable: value})
    assert process.popen.wait(30) != 0
    assert message in process.output()
