"""Every 401/403 case of CONTRACTS section 3, through a real Flask app."""

import time
import warnings

import jwt
import pytest
from bobdesk_devtools.testing import TEST_ENV, public_token, service_token, user_token
from bobdesk_shared import auth
from bobdesk_shared.web import Blueprint, create_app
from flask import g, jsonify
from flask.views import MethodView
from jwt.warnings import InsecureKeyLengthWarning

CLIENT = "5d9b5b5b9ab7e72a4fb4ae69"
SECRET = TEST_ENV["JWT_SECRET"]


@pytest.fixture
def client(settings_factory):
    blp = Blueprint("probe", __name__)

    @blp.route("/user", methods=["GET", "POST"])
    def user_view():
        user = auth.require_user()
        return jsonify(client=str(user.client), user=user.user_id)

    @blp.route("/public")
    def public_view():
        caller = auth.require_public()
        return jsonify(client=str(caller.client))

    internal = Blueprint("internal", __name__, url_prefix="/internal")
    auth.authenticate_services(internal)

    @internal.route("")
    class ForWorkers(MethodView):
        callers = ("worker", "other")

        def get(self):
            return jsonify(service=g.service.name)

    @internal.route("/nobody")
    class ForNobody(MethodView):
        def get(self):
            return jsonify(service=g.service.name)

    app, _ = create_app(settings_factory(), import_name=__name__, title="probe", blueprints=[blp, internal],
                        ready_checks={})
    return app.test_client()


def _token(claims, secret=SECRET, algorithm="HS256", **kw):
    return jwt.encode(claims, secret, algorithm=algorithm, **kw)


def _claims(**over):
    claims = {"aud": "jarvis", "sub": "u1", "client": CLIENT, "permissions": ["accounting"],
              "exp": int(time.time()) + 60}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _get(client, path, token=None, cookie=None, header=None):
    if cookie:
        client.set_cookie("session", cookie)
    headers = {"Authorization": header} if header else ({"Authorization": f"Bearer {token}"} if token else {})
    return client.get(path, headers=headers)


def _assert_error(response, status):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]


def test_user_token_by_bearer_and_by_cookie(client):
    assert _get(client, "/user", user_token(CLIENT)).get_json() == {"client": CLIENT, "user": "user-1"}
    assert _get(client, "/user", cookie=user_token(CLIENT)).status_code == 200


def test_cookie_and_bearer_of_the_same_user_are_accepted(client):
    response = _get(client, "/user", user_token(CLIENT), cookie=user_token(CLIENT, permissions=()))
    assert response.get_json() == {"client": CLIENT, "user": "user-1"}  # the Bearer token's permissions


@pytest.mark.parametrize("cookie", [
    "not.a.jwt", "", public_token(CLIENT), user_token("64b2e4d19ab7e72a4fb4ac20"),
    user_token(CLIENT, user_id="someone-else")])
def test_cookie_and_bearer_that_disagree_are_401(client, cookie):
    client.set_cookie("session", cookie)
    _assert_error(client.get("/user", headers={"Authorization": f"Bearer {user_token(CLIENT)}"}), 401)


def test_invalid_bearer_with_a_valid_cookie_is_401(client):
    _assert_error(_get(client, "/user", "not.a.jwt", cookie=user_token(CLIENT)), 401)


def _alg_none_token():
    import base64
    import json

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(_claims())}."


def _other_algorithm_token():
    # Right secret, wrong algorithm; PyJWT's warning about the key's length for HS512 is beside the point.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return _token(_claims(), algorithm="HS512")


@pytest.mark.parametrize(
    "case, token, header",
    [
        ("missing", None, None),
        ("not bearer", None, "Basic abc"),
        ("empty bearer", None, "Bearer "),
        ("malformed", "not.a.jwt", None),
        ("expired", _token(_claims(exp=int(time.time()) - 120)), None),
        ("no exp", _token(_claims(exp=None)), None),
        ("exp a numeric string", _token(_claims(exp=str(int(time.time()) + 600))), None),
        ("exp a boolean", _token(_claims(exp=True)), None),
        ("iat a numeric string", _token(_claims(iat=str(int(time.time())))), None),
        ("two audiences", _token(_claims(aud=["public-api", "jarvis"])), None),
        ("one audience in a list", _token(_claims(aud=["jarvis"])), None),
        ("alg none", _alg_none_token(), None),
        ("other algorithm", _other_algorithm_token(), None),
        ("wrong audience", _token(_claims(aud="public-api")), None),
        ("no audience", _token(_claims(aud=None)), None),
        ("wrong secret", _token(_claims(), secret="another-secret-entirely-0123456789abc"), None),
        ("public token on user route", public_token(CLIENT), None),
        ("service token on user route", service_token(), None),
        ("client not an id", _token(_claims(client="acme")), None),
        ("permissions not a list", _token(_claims(permissions="accounting")), None),
    ],
)
def test_user_route_401(client, case, token, header):
    _assert_error(_get(client, "/user", token, header=header), 401)


def test_expired_within_leeway_is_accepted(client):
    assert _get(client, "/user", _token(_claims(exp=int(time.time()) - 10))).status_code == 200


def test_user_without_accounting_permission_is_403(client):
    response = _get(client, "/user", user_token(CLIENT, permissions=["tickets"]))
    _assert_error(response, 403)
    assert response.get_json()["error"]["code"] == "missing_permission"


@pytest.mark.parametrize(
    "token",
    [
        user_token(CLIENT),
        service_token(),
        jwt.encode({"aud": "public-api", "client": CLIENT, "scope": "invoices:read"}, SECRET, algorithm="HS256"),
        jwt.encode({"aud": "public-api", "client": CLIENT, "scope": "invoices:read", "exp": int(time.time()) + 60},
                   "wrong-secret-0123456789abcdef0123456789", algorithm="HS256"),
    ],
    ids=["user token", "service token", "no exp", "wrong secret"],
)
def test_public_route_401(client, token):
    _assert_error(_get(client, "/public", token), 401)


def test_public_cookie_is_not_enough(client):
    _assert_error(_get(client, "/public", cookie=public_token(CLIENT)), 401)


def test_public_scope(client):
    assert _get(client, "/public", public_token(CLIENT)).status_code == 200
    assert _get(client, "/public", public_token(CLIENT, scope="tickets:read invoices:read")).status_code == 200
    response = _get(client, "/public", public_token(CLIENT, scope="tickets:read"))
    _assert_error(response, 403)
    assert response.get_json()["error"]["code"] == "missing_scope"


def test_a_token_naming_both_apis_works_on_neither(client):
    both = {"aud": ["public-api", "jarvis"], "client": CLIENT, "scope": "invoices:read", "sub": "u1",
            "permissions": ["accounting"], "exp": int(time.time()) + 60}
    _assert_error(_get(client, "/user", _token(both)), 401)
    _assert_error(_get(client, "/public", _token(both)), 401)


def test_a_cookie_post_must_be_json(client):
    """A cross-site form can send the cookie, but not an application/json body."""
    client.set_cookie("session", user_token(CLIENT))
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/user", data="a=b", headers=headers)
        _assert_error(response, 415)
        assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert client.post("/user", json={}).status_code == 200
    assert client.get("/user").status_code == 200


def test_a_bearer_post_needs_no_json(client):
    """A cross-site form cannot set the Authorization header."""
    response = client.post("/user", data="a=b", headers={"Authorization": f"Bearer {user_token(CLIENT)}",
                                                           "Content-Type": "text/plain"})
    assert response.status_code == 200


def test_service_route_serves_only_its_callers(client):
    assert _get(client, "/internal", service_token("worker")).get_json() == {"service": "worker"}
    assert _get(client, "/internal", service_token("other")).get_json() == {"service": "other"}
    for token, path in ((service_token("intruder"), "/internal"), (service_token("worker"), "/internal/nobody")):
        response = _get(client, path, token)
        _assert_error(response, 403)
        assert response.get_json()["error"]["code"] == "service_not_allowed"


def test_service_route(client):
    assert _get(client, "/internal", service_token("worker")).get_json() == {"service": "worker"}
    _assert_error(_get(client, "/internal", user_token(CLIENT)), 401)
    _assert_error(_get(client, "/internal", public_token(CLIENT)), 401)
    signed_with_user_secret = auth.mint_service_token(SECRET, name="x")
    _assert_error(_get(client, "/internal", signed_with_user_secret), 401)


def test_errors_never_echo_the_token(client):
    token = _token(_claims(aud="public-api"))
    assert token not in _get(client, "/user", token).get_data(as_text=True)


def test_service_token_source_reuses_then_renews(monkeypatch):
    source = auth.ServiceTokenSource(TEST_ENV["SERVICE_JWT_SECRET"], "worker", ttl_seconds=60)
    first = source()
    assert source() == first
    claims = auth.service_from_token(first, TEST_ENV["SERVICE_JWT_SECRET"])
    assert claims.name == "worker"
    monkeypatch.setattr(time, "monotonic", lambda: 10**9)
    monkeypatch.setattr(time, "time", lambda: 10**9)
    assert source() != first


@pytest.fixture
def verifications(monkeypatch):
    """The (token, audience) of every full verification, none kept from earlier tests."""
    seen = []
    verify = auth._verify
    monkeypatch.setattr(auth, "_verified", auth.VerifiedTokens())
    monkeypatch.setattr(auth, "_verify", lambda token, secret, audience: seen.append((token, audience))
                        or verify(token, secret, audience))
    return seen


def test_a_token_is_verified_once_then_only_its_expiry_is_checked(client, verifications):
    # Expires within the second: past `exp` and the leeway, the kept token is refused as PyJWT would.
    exp = int(time.time()) - auth.LEEWAY_SECONDS + 1
    token = _token(_claims(exp=exp))
    assert [_get(client, "/user", token).status_code for _ in range(3)] == [200, 200, 200]
    assert verifications == [(token, "jarvis")]
    time.sleep(max(0.0, exp + auth.LEEWAY_SECONDS - time.time()) + 0.05)
    response = _get(client, "/user", token)
    _assert_error(response, 401)
    assert response.get_json()["error"]["code"] == "token_expired"


def test_a_refused_token_is_never_kept_nor_a_kept_one_valid_for_another_audience(client, verifications):
    bad = _token(_claims(), secret="another secret of at least thirty-two bytes")
    for _ in range(2):
        _assert_error(_get(client, "/user", bad), 401)
    token = user_token(CLIENT)
    assert _get(client, "/user", token).status_code == 200
    _assert_error(_get(client, "/public", token), 401)
    assert verifications == [(bad, "jarvis"), (bad, "jarvis"), (token, "jarvis"), (token, "public-api")]


def test_verified_tokens_are_bounded_the_oldest_dropped_first(monkeypatch):
    monkeypatch.setattr(auth.VerifiedTokens, "SIZE", 2)
    tokens = auth.VerifiedTokens()
    claims = {"exp": time.time() + 60}
    for token in ("a", "b", "c"):
        tokens.keep(token, SECRET, "jarvis", claims)
    assert [tokens.get(token, SECRET, "jarvis") for token in ("a", "b", "c")] == [None, claims, claims]
