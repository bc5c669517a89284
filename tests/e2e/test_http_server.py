"""What the HTTP server layer answers itself, through gunicorn: a request line or header over its
limit, a malformed request or chunk, a chunked body over the body limit. Each answer has the
JSON error shape, like every answer of the application."""

from __future__ import annotations

import json
import socket
import threading

import pytest

pytestmark = pytest.mark.e2e

NAMES = ["connections", "invoices", "webhooks"]


def _exchange(url: str, head: bytes, body_chunks=()) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request (the body while reading the answer, as a client does) and parse the answer."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)

    def send():
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed before the whole body was sent
            pass

    sender = threading.Thread(target=send)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sender.join(30)
        sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode("latin-1").split(": ", 1) for line in header_block.split(b"\r\n") if b": " in line)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, payload


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 62


def _assert_json_error(answer, status: int, code: str) -> None:
    got_status, headers, payload = answer
    assert got_status == status, payload[:300]
    assert headers["content-type"].startswith("application/json")
    body = json.loads(payload)
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize("name", NAMES)
def test_a_request_line_over_the_limit_is_a_json_414(stack, name):
    head = b"GET /healthz?q=" + b"a" * (100 << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _assert_json_error(_exchange(stack.urls[name], head), 414, "uri_too_long")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("header", [b"Authorization: Bearer ", b"Cookie: session="])
def test_a_header_over_the_limit_is_a_json_431(stack, name, header):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"a" * (100 << 10) + b"\r\n\r\n"
    _assert_json_error(_exchange(stack.urls[name], head), 431, "header_fields_too_large")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("head", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
], ids=["request line", "chunk size", "header"])
def test_a_malformed_request_is_a_json_400(stack, name, head):
    _assert_json_error(_exchange(stack.urls[name], head), 400, "bad_request")


def _chunked_post(path: str, token: str | None, total: int, chunk: int = 1 << 16):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    sizes = [chunk] * (total // chunk) + ([total % chunk] if total % chunk else [])
    chunks = [b"%x\r\n%s\r\n" % (size, b" " * size) for size in sizes] + [b"0\r\n\r\n"]
    return head, chunks


@pytest.mark.parametrize("name, path", [
    ("connections", "/invoice-connections"), ("invoices", "/internal/invoices/batch"),
    ("webhooks", "/webhooks/yooz/{connection}"),
])
def test_a_chunked_body_over_the_limit_is_a_json_413(stack, components, seeded, name, path):
    component = components[name]
    path = path.format(connection=seeded[1])
    token = component.credentials(path).get("Authorization", "").removeprefix("Bearer ") or None
    head, chunks = _chunked_post(path, token, 10 << 20)
    _assert_json_error(_exchange(stack.urls[name], head, chunks), 413, "payload_too_large")


def test_a_chunked_body_within_the_limit_is_read_whole(stack, components):
    """Not truncated at some buffer size: a chunked body is parsed like a sized one."""
    component = components["connections"]
    body = json.dumps({"provider": "yooz", "apiKey": "k" * 4000, "webhookSecret": "w" * 4000, "active": False}).encode()
    token = component.credentials("/invoice-connections")["Authorization"].removeprefix("Bearer ")
    head = (f"POST /invoice-connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunks = [b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000]) for i in range(0, len(body), 1000)]
    status, _, payload = _exchange(stack.urls["connections"], head, [*chunks, b"0\r\n\r\n"])
    assert status == 201, payload[:300]
    assert json.loads(payload)["hasCredentials"] is True
