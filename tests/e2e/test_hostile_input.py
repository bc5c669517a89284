"""Hostile input to every route of every component, over real HTTP: no answer is a 5xx, and every
error has the JSON shape `{"error": {"code", "message"}}`.

Routes come from each component's own OpenAPI document, so a new route is fuzzed without
a line here. Each route gets a fixed number of examples from hypothesis (derandomized:
the same inputs on every run): deeply nested, oversized, wrongly typed and wrongly encoded
bodies, hostile path and query parameters (repeated, unknown, huge, any Unicode), sent
with the credentials of the route's audience so they reach validation, and webhook bodies
signed with the connection's real secret so they reach the event parser.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Component, sign_webhook

pytestmark = pytest.mark.e2e

EXAMPLES_PER_ROUTE = 40

# Text a URL or a JSON document can carry (a lone surrogate is not even encodable in UTF-8).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | any_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(any_text, inner, max_size=4), max_leaves=12)


def _nested(depth: int, kind: str) -> bytes:
    text = ('{"a":' * depth + "1" + "}" * depth) if kind == "object" else ("[" * depth + "]" * depth)
    return text.encode()


raw_bodies = st.one_of(
    st.builds(_nested, st.integers(30, 3000), st.sampled_from(["object", "array"])),
    st.binary(max_size=200),  # arbitrary bytes, mostly not UTF-8
    st.sampled_from([
        b"", b"{", b"null", b"[]", b'"x"', b"NaN", b'{"a": 1e999}', b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": "\\ud800"}', b"\xef\xbb\xbf{}", '{"a": "é"}'.encode("utf-16"), '{"a": "é"}'.encode("latin-1"),
        b"x" * (100 << 10),  # over the 64 KiB limit of connections-service and the webhook receiver
    ]),
)
content_types = st.sampled_from(["application/json", "application/json", "application/json; charset=utf-16",
                                 "text/plain", "application/x-www-form-urlencoded", None])


def _fields(component: Component, operation: dict) -> list[str]:
    """The property names of the operation's JSON body (resolving one `$ref`)."""
    schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}))
    if "$ref" in schema:
        schema = component.spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {}))


def _bodies(fields: list[str]):
    """Bodies shaped like the operation's own (its field names, any values), or not shaped at all."""
    shaped = st.fixed_dictionaries({}, optional={name: json_values for name in fields}) if fields else st.just({})
    return st.one_of(shaped.map(lambda body: json.dumps(body).encode()),
                     json_values.map(lambda value: json.dumps(value).encode()), raw_bodies)


def _path_values(real_ids: list[str]):
    return st.one_of(st.sampled_from(real_ids), st.sampled_from([i.upper() for i in real_ids]),
                     any_text.filter(bool), st.text("0123456789abcdef", min_size=23, max_size=25),
                     st.just("x" * 3000))


def _queries(operation: dict):
    names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"] or ["limit"]
    pair = st.tuples(st.sampled_from(names) | any_text.filter(bool),
                     any_text | st.integers(-(10**20), 10**20).map(str) | st.just("9" * 5000))
    return st.lists(pair, max_size=5)


def _url(component: Component, path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return component.url + path


def assert_answer_is_sound(response: requests.Response, sent: str) -> None:
    assert response.status_code < 500, f"{sent} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers.get("Content-Type", "").startswith("application/json"), sent
        body = response.json()
        assert set(body) == {"error"}, sent
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], sent
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], sent


def _fuzz_route(component: Component, http: requests.Session, method: str, path: str, operation: dict,
                real_ids: list[str]) -> None:
    params = [name for name in ("connection_id", "invoice_id", "provider") if "{" + name + "}" in path]
    signable = path.startswith("/webhooks/")

    @settings(max_examples=EXAMPLES_PER_ROUTE, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(values=st.fixed_dictionaries({name: (st.just("yooz") | _path_values(["yooz"]) if name == "provider"
                                                else _path_values(real_ids)) for name in params}),
           query=_queries(operation), body=_bodies(_fields(component, operation)), content_type=content_types,
           authenticated=st.integers(0, 9), signed=st.booleans())
    def fuzz(values, query, body, content_type, authenticated, signed):
        headers = component.credentials(path) if authenticated else {"Authorization": "Bearer x.y.z"}
        if authenticated == 1 and component.takes_cookie(path):  # the session cookie instead of Bearer
            headers = {"Cookie": f"session={headers['Authorization'].removeprefix('Bearer ')}"}
        if signable and signed:
            headers.update(sign_webhook(body))
        if content_type:
            headers["Content-Type"] = content_type
        # One connection per hostile request: reusing a kept-alive one races the server's idle close,
        # and a dropped connection would then be blamed on the input.
        headers["Connection"] = "close"
        url = _url(component, path, values)
        data = body if method in ("POST", "PATCH", "PUT") else None
        response = http.request(method, url, params=query, data=data, headers=headers, timeout=30)
        assert_answer_is_sound(response, f"{method} {url} {query!r} {body[:120]!r}")

    fuzz()


@pytest.mark.parametrize("name", ["connections", "invoices", "webhooks"])
def test_no_input_gets_a_5xx_on_any_route(components, seeded, name):
    component = components[name]
    _, connection, invoice = seeded
    operations = component.operations()
    assert operations, f"{name} documents no route"
    with requests.Session() as http:
        for method, path, operation in operations:
            _fuzz_route(component, http, method, path, operation, [connection, invoice])


@pytest.mark.parametrize("name", ["connections", "invoices", "webhooks"])
def test_operational_routes_take_hostile_queries(components, name):
    component = components[name]
    with requests.Session() as http:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/nowhere", "/" + "x" * 3000):
            for query in ({"a": "1", "b": "2"}, {"limit": "9" * 3000}, {"\u0000": "\u202e"}):
                response = http.get(component.url + path, params=query, timeout=10)
                assert_answer_is_sound(response, f"GET {path} {query!r}")
