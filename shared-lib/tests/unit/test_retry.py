"""The platform's one backoff policy, and the service client retrying on its pooled adapter."""

import threading
import time
from collections import deque

import pytest
from bobdesk_devtools.stack import free_port
from bobdesk_shared.auth import ServiceTokenSource
from bobdesk_shared.retry import backoff_delay
from bobdesk_shared.service_client import ServiceCallError, ServiceClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@pytest.mark.parametrize("failures", [1, 2, 3, 6, 40])
def test_backoff_is_full_jitter_under_an_exponential_ceiling(failures):
    ceiling = min(10.0, 0.5 * 2 ** (failures - 1))
    delays = [backoff_delay(failures, base=0.5, cap=10.0) for _ in range(500)]
    assert all(0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2


def test_backoff_keeps_a_floor_and_never_comes_before_what_was_asked():
    assert all(backoff_delay(1, base=30, cap=240, floor=1) >= 1 for _ in range(200))
    assert all(backoff_delay(2, base=1, cap=2, at_least=7.5) == 7.5 for _ in range(50))


class Scripted:
    """Answers each request with the next scripted (status, headers); records method and arrival time."""

    def __init__(self):
        self.replies: deque = deque()
        self.seen: list[tuple[str, float]] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request):
        self.seen.append((request.method, time.monotonic()))
        status, headers = self.replies.popleft() if self.replies else (200, {})
        return Response("{}", status=status, headers=headers, content_type="application/json")


@pytest.fixture
def scripted():
    server = Scripted()
    yield server
    server.server.shutdown()


def client(url, **options):
    options = {"backoff_base": 0.01, "backoff_cap": 2.0} | options
    return ServiceClient(url, ServiceTokenSource("s" * 32, "test"), timeout=(1, 2), **options)


def test_5xx_and_every_method_are_retried_up_to_the_attempts(scripted):
    scripted.replies.extend([(503, {}), (500, {})])
    answer = client(scripted.url, attempts=3).request("POST", "/x", json={"a": 1})
    assert answer.status_code == 200 and [method for method, _ in scripted.seen] == ["POST"] * 3


def test_a_5xx_that_outlasts_the_attempts_is_a_service_call_error(scripted):
    scripted.replies.extend([(502, {})] * 3)
    with pytest.raises(ServiceCallError, match="HTTP 502"):
        client(scripted.url, attempts=2).request("GET", "/x")
    assert len(scripted.seen) == 2


def test_without_attempts_nothing_is_retried_and_4xx_are_answers(scripted):
    scripted.replies.extend([(503, {}), (409, {})])
    with pytest.raises(ServiceCallError):
        client(scripted.url).request("GET", "/x")
    assert client(scripted.url, attempts=3).request("GET", "/x").status_code == 409
    assert len(scripted.seen) == 2


def test_retry_after_is_honoured(scripted):
    scripted.replies.append((503, {"Retry-After": "1"}))
    client(scripted.url, attempts=2).request("GET", "/x")
    (_, first), (_, second) = scripted.seen
    assert second - first >= 0.95


def test_a_retry_after_beyond_the_cap_ends_the_retries_with_the_last_answer(scripted):
    scripted.replies.extend([(503, {"Retry-After": "5"}), (200, {})])
    with pytest.raises(ServiceCallError, match="HTTP 503"):
        client(scripted.url, attempts=4).request("GET", "/x")
    assert len(scripted.seen) == 1


def test_an_unreachable_service_is_a_service_call_error_after_the_attempts():
    with pytest.raises(ServiceCallError, match="GET /x"):
        client(f"http://127.0.0.1:{free_port()}", attempts=3).request("GET", "/x")
