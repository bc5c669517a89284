"""The Yooz adapter over HTTP: pooled session, retries, Retry-After, 401, paging and checkpoints."""

import datetime as dt
import email.utils
import json
import threading
import time
from collections import deque

import pytest
from ingest_worker.providers.base import (
    GONE,
    Aborted,
    BadCredentials,
    ProviderError,
    ProviderUnavailable,
    StaticCall,
    Throttled,
)
from ingest_worker.providers.http import ProviderHttp, RetryPolicy, Transient
from ingest_worker.providers.yooz import YoozAdapter
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class ScriptedServer:
    """Answers each request with the next scripted reply: (status, body, headers[, delay])."""

    def __init__(self):
        self.replies: deque = deque()
        self.requests: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @Request.application
    def app(self, request):
        self.requests.append({"path": request.environ["REQUEST_URI"].split("?")[0], "args": dict(request.args),
                              "auth": request.headers.get("Authorization"), "at": time.monotonic()})
        status, body, headers, *delay = self.replies.popleft()
        if delay:
            time.sleep(delay[0])
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Response(data, status=status, headers=headers, content_type="application/json")

    def reply(self, status=200, body=None, headers=None, delay=None):
        self.replies.append((status, {} if body is None else body, headers or {}, *([delay] if delay else [])))

    def close(self):
        self.server.shutdown()


class RecordingCall(StaticCall):
    def __init__(self, api_key="key-1"):
        super().__init__(api_key)
        self.calls = 0
        self.waits: list[float] = []

    def before_call(self):
        self.calls += 1
        return super().before_call()

    def wait(self, seconds):
        self.waits.append(seconds)


@pytest.fixture(scope="module")
def shared_server():
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def server(shared_server):
    shared_server.replies.clear()
    shared_server.requests.clear()
    return shared_server


def make_adapter(url, **policy):
    options = {"max_attempts": 4, "backoff_base": 0.01, "backoff_cap": 0.05, "max_retry_after": 30} | policy
    return YoozAdapter(url, ProviderHttp("yooz", timeout=(1, 0.5), policy=RetryPolicy(**options)))


@pytest.fixture
def adapter(server):
    adapter = make_adapter(server.url)
    yield adapter
    adapter.close()


def doc(identifier, updated_at):
    return {"id": identifier, "updated_at": updated_at}


def test_pages_are_listed_with_the_key_and_a_checkpoint_each(server, adapter):
    server.reply(body={"items": [doc("A", "2024-01-01T00:00:00Z"), doc("B", "2024-01-02T00:00:00Z")],
                       "next_cursor": "c1"})
    server.reply(body={"items": [doc("C", "2024-01-03T00:00:00.250Z")], "next_cursor": None})
    call = RecordingCall()
    pages = list(adapter.list_changes(call, None, 2))
    assert [[d["id"] for d in p.documents] for p in pages] == [["A", "B"], ["C"]]
    # From no checkpoint the listing is a full one: named while it runs, complete on its last page.
    listing = pages[0].listing
    assert listing and [p.listing for p in pages] == [listing, listing]
    assert [p.listing_complete for p in pages] == [False, True]
    assert pages[0].checkpoint == {"updated_since": "2024-01-02T00:00:00.000000Z", "cursor": "c1", "listing": listing}
    assert pages[1].checkpoint == {"updated_since": "2024-01-03T00:00:00.250000Z", "cursor": None}
    assert [p.last for p in pages] == [False, True]
    first, second = server.requests
    assert first["args"] == {"updated_since": "1970-01-01T00:00:00.000000Z", "limit": "2"}
    assert second["args"] == {"updated_since": "2024-01-02T00:00:00.000000Z", "limit": "2", "cursor": "c1"}
    assert first["auth"] == "Bearer key-1"
    assert call.calls == 2  # the context is consulted before every request


def test_listing_resumes_from_a_stored_checkpoint(server, adapter):
    server.reply(body={"items": [], "next_cursor": None})
    pages = list(adapter.list_changes(RecordingCall(), {"updated_since": "2024-05-01T00:00:00.000Z",
                                                        "cursor": "c9"}, 100))
    assert pages[0].listing is None  # an incremental listing cancels nothing
    assert server.requests[0]["args"] == {"updated_since": "2024-05-01T00:00:00.000000Z", "cursor": "c9",
                                          "limit": "100"}
    assert pages[0].checkpoint == {"updated_since": "2024-05-01T00:00:00.000000Z", "cursor": None}


def test_a_refused_cursor_falls_back_to_updated_since(server, adapter):
    server.reply(400, {"error": "invalid cursor"})
    server.reply(body={"items": [], "next_cursor": None})
    list(adapter.list_changes(RecordingCall(), {"updated_since": "2024-05-01T00:00:00.000Z", "cursor": "old"}, 10))
    assert "cursor" not in server.requests[1]["args"]


def test_the_high_water_mark_ignores_unreadable_times_and_never_goes_back(server, adapter):
    server.reply(body={"items": [doc("A", "2024-01-05T00:00:00Z"), doc("B", "garbage"), "not even an object"],
                       "next_cursor": None})
    page, = adapter.list_changes(RecordingCall(), {"updated_since": "2024-01-06T00:00:00.000Z"}, 10)
    assert page.checkpoint["updated_since"] == "2024-01-06T00:00:00.000000Z"
    assert len(page.documents) == 3  # bad documents are the mapper's to reject, one by one


def test_an_unreadable_checkpoint_restarts_from_the_beginning(server, adapter):
    server.reply(body={"items": [], "next_cursor": None})
    list(adapter.list_changes(RecordingCall(), {"updated_since": "not a time"}, 10))
    assert server.requests[0]["args"]["updated_since"] == "1970-01-01T00:00:00.000000Z"


@pytest.mark.parametrize("status, body", [(500, {}), (502, b"<html>bad gateway</html>"), (503, {}),
                                          (200, b"{truncated"), (200, {"items": "nope"}), (200, [1]),
                                          (200, {"items": [], "next_cursor": 5}),
                                          (200, b"[" * 100_000 + b"]" * 100_000)])
def test_server_errors_and_malformed_answers_are_retried(server, adapter, status, body):
    server.reply(status, body)
    server.reply(body={"items": [doc("A", "2024-01-01T00:00:00Z")], "next_cursor": None})
    call = RecordingCall()
    page, = adapter.list_changes(call, None, 10)
    assert page.documents[0]["id"] == "A"
    assert call.calls == 2 and len(call.waits) == 1


def test_backoff_is_exponential_with_full_jitter(server):
    adapter = make_adapter(server.url, max_attempts=6, backoff_base=1, backoff_cap=8)
    for _ in range(6):
        server.reply(500)
    call = RecordingCall()
    with pytest.raises(ProviderUnavailable):
        list(adapter.list_changes(call, None, 10))
    assert call.calls == 6 and len(call.waits) == 5
    for attempt, wait in enumerate(call.waits):
        assert 0 <= wait <= min(8, 2**attempt)
    adapter.close()


def test_time_outs_are_retried(server, adapter):
    server.reply(body={"items": [], "next_cursor": None}, delay=1.0)
    server.reply(body={"items": [], "next_cursor": None})
    call = RecordingCall()
    list(adapter.list_changes(call, None, 10))
    assert call.calls == 2


def test_an_unreachable_provider_ends_as_a_provider_error(server):
    adapter = make_adapter("http://127.0.0.1:9", max_attempts=2)
    with pytest.raises(ProviderUnavailable) as caught:
        list(adapter.list_changes(RecordingCall(), None, 10))
    assert caught.value.kind == "provider_error"
    adapter.close()


def test_429_waits_at_least_retry_after(server, adapter):
    server.reply(429, {}, {"Retry-After": "3"})
    server.reply(body={"items": [], "next_cursor": None})
    call = RecordingCall()
    list(adapter.list_changes(call, None, 10))
    assert call.waits == [3]


def test_a_retry_after_beyond_the_policy_ends_the_call_as_throttled(server, adapter):
    server.reply(429, {}, {"Retry-After": "120"})
    call = RecordingCall()
    with pytest.raises(Throttled) as caught:
        list(adapter.list_changes(call, None, 10))
    assert caught.value.kind == "throttled" and caught.value.retry_after_seconds == 120
    assert call.calls == 1 and call.waits == []


def test_persistent_throttling_reports_the_last_retry_after(server, adapter):
    for _ in range(4):
        server.reply(429, {}, {"Retry-After": "2"})
    with pytest.raises(Throttled) as caught:
        list(adapter.list_changes(RecordingCall(), None, 10))
    assert caught.value.retry_after_seconds == 2


def test_401_is_bad_credentials_at_once(server, adapter):
    server.reply(401, {"error": "unauthorized"})
    call = RecordingCall()
    with pytest.raises(BadCredentials) as caught:
        list(adapter.list_changes(call, None, 10))
    assert caught.value.kind == "bad_credentials" and call.calls == 1


def test_another_4xx_is_a_provider_error_without_retry(server, adapter):
    server.reply(403, {})
    with pytest.raises(ProviderError):
        list(adapter.list_changes(RecordingCall(), None, 10))
    assert len(server.requests) == 1


def test_the_key_from_the_context_is_used_for_each_attempt(server, adapter):
    keys = iter(["old-key", "rotated-key"])

    class Rotating(RecordingCall):
        def before_call(self):
            super().before_call()
            return next(keys)

    server.reply(500)
    server.reply(body={"items": [], "next_cursor": None})
    list(adapter.list_changes(Rotating(), None, 10))
    assert [r["auth"] for r in server.requests] == ["Bearer old-key", "Bearer rotated-key"]


def test_a_stop_during_backoff_aborts(server, adapter):
    server.reply(500)
    call = StaticCall("k")
    call.stop.set()
    with pytest.raises(Aborted):
        list(adapter.list_changes(call, None, 10))


def test_fetch_one_invoice(server, adapter):
    server.reply(body=b'{"id": "YZ/1", "total_incl_tax": 1200.10}')
    server.reply(404, {"error": "not found"})
    document = adapter.fetch_invoice(RecordingCall(), "YZ/1")
    assert str(document["total_incl_tax"]) == "1200.10"  # a Decimal, exact
    assert server.requests[0]["path"] == "/invoices/YZ%2F1"
    assert adapter.fetch_invoice(RecordingCall(), "YZ-2") is GONE


def test_an_oversized_answer_is_refused(server):
    adapter = YoozAdapter(server.url, ProviderHttp("yooz", timeout=(1, 1), max_body_bytes=1000,
                                                   policy=RetryPolicy(max_attempts=1)))
    server.reply(body={"items": ["x" * 2000], "next_cursor": None})
    with pytest.raises(ProviderUnavailable):
        list(adapter.list_changes(RecordingCall(), None, 10))
    adapter.close()


def test_a_future_dated_document_does_not_push_the_checkpoint_past_now(server, adapter):
    server.reply(body={"items": [doc("A", "2024-01-05T00:00:00Z"), doc("FUTURE", "2999-01-01T00:00:00Z")],
                       "next_cursor": None})
    server.reply(body={"items": [], "next_cursor": None})
    before = dt.datetime.now(dt.UTC)
    page, = adapter.list_changes(RecordingCall(), None, 10)
    mark = dt.datetime.fromisoformat(page.checkpoint["updated_since"].replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= mark <= dt.datetime.now(dt.UTC)
    list(adapter.list_changes(RecordingCall(), {"updated_since": "2999-01-01T00:00:00.000Z"}, 10))
    assert server.requests[1]["args"]["updated_since"] < "2999"


def test_a_retry_after_given_as_an_http_date_is_honoured(server, adapter):
    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20), usegmt=True)
    server.reply(429, {}, {"Retry-After": when})
    server.reply(body={"items": [], "next_cursor": None})
    call = RecordingCall()
    list(adapter.list_changes(call, None, 10))
    assert len(call.waits) == 1 and 17 <= call.waits[0] <= 20


class HeaderPacing:
    """A provider's published limit: when an answer says none is left, hold that key until the reset."""

    def __init__(self):
        self.holds: dict[str, float] = {}
        self.observed: list[tuple[str, int]] = []

    def delay(self, api_key):
        return self.holds.pop(api_key, 0.0)

    def observe(self, api_key, status, headers):
        self.observed.append((api_key, status))
        if headers.get("ratelimit-remaining") == "0":
            self.holds[api_key] = float(headers["ratelimit-reset"])


def test_a_plugged_pacing_reads_every_answer_and_holds_the_next_call_of_the_same_key(server):
    pacing = HeaderPacing()
    http = ProviderHttp("paced", timeout=(1, 1), pacing=pacing,
                        policy=RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02))
    server.reply(500, {}, {"ratelimit-remaining": "0", "ratelimit-reset": "4"})
    server.reply(200, {"n": 1}, {"ratelimit-remaining": "0", "ratelimit-reset": "5"})
    server.reply(200, {"n": 2})

    def interpret(status, body, headers):
        if status >= 500:
            raise Transient("server_error", f"HTTP {status}")
        return json.loads(body)["n"]

    call = RecordingCall()
    assert http.get(call, server.url + "/a", params=None, headers=lambda key: {}, interpret=interpret) == 1
    assert call.calls == 2 and call.waits[1] == 4  # the retry's backoff, then the hold the 500 asked for
    other_key = RecordingCall("key-2")
    assert http.get(other_key, server.url + "/b", params=None, headers=lambda key: {}, interpret=interpret) == 2
    assert other_key.waits == []  # another key's budget is its own
    assert pacing.observed == [("key-1", 500), ("key-1", 200), ("key-2", 200)]
    assert pacing.delay("key-1") == 5
    http.close()
