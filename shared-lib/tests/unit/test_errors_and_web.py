"""The error shape (CONTRACTS section 4) and the wiring every HTTP component gets."""

import marshmallow as ma
import pytest
from bobdesk_shared.errors import Conflict
from bobdesk_shared.schemas import JsonBoolean
from bobdesk_shared.web import Blueprint, create_app
from flask.views import MethodView
from pymongo import errors as pymongo_errors


class ThingSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=10))
    count = ma.fields.Integer(load_default=1)
    active = JsonBoolean()


class ThingQuery(ma.Schema):
    limit = ma.fields.Integer(load_default=5, validate=ma.validate.Range(min=1, max=10))


class TaggedQuery(ThingQuery):
    tag = ma.fields.List(ma.fields.String())


@pytest.fixture
def app_and_state(settings_factory):
    state = {"ready": True}
    blp = Blueprint("things", __name__, url_prefix="/things")

    @blp.route("")
    class Things(MethodView):
        @blp.arguments(ThingQuery, location="query")
        @blp.response(200)
        def get(self, query):
            return {"limit": query["limit"]}

        @blp.arguments(ThingSchema)
        @blp.response(201)
        def post(self, body):
            if body["name"] == "taken":
                raise Conflict("That name is taken.", code="name_taken")
            if body["name"] == "boom":
                raise RuntimeError("internal detail: /srv/secret/path")
            return body

    @blp.route("/tagged")
    class Tagged(MethodView):
        @blp.arguments(TaggedQuery, location="query")
        @blp.response(200)
        def get(self, query):
            return query

    app, _ = create_app(settings_factory(), import_name=__name__, title="Things", blueprints=[blp],
                        ready_checks={"database": lambda: state["ready"]})
    return app, state


@pytest.fixture
def client(app_and_state):
    return app_and_state[0].test_client()


def _error(response, status, code):
    assert response.status_code == status
    body = response.get_json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_valid_request(client):
    assert client.post("/things", json={"name": "a"}).get_json() == {"name": "a", "count": 1}
    assert client.post("/things", json={"name": "a", "active": False}).get_json()["active"] is False
    assert client.get("/things?limit=3").get_json() == {"limit": 3}


@pytest.mark.parametrize(
    "body, field",
    [({}, "name"), ({"name": ""}, "name"), ({"name": 3}, "name"), ({"name": "a", "count": "x"}, "count"),
     ({"name": "a", "extra": 1}, "extra"), ({"name": "a", "count": True}, "count"),
     ({"name": "a", "active": "yes"}, "active"), ({"name": "a", "active": 1}, "active")],
)
def test_validation_errors_are_400_with_details(client, body, field):
    response = client.post("/things", json=body)
    error = _error(response, 400, "validation_error")
    assert field in error["details"]


@pytest.mark.parametrize("body", [
    b"{not json", b"[" * 1000 + b"]" * 1000, b'{"name": ' * 40 + b'"a"' + b"}" * 40, b'{"name": "a", "count": '
    + b"9" * 5000 + b"}", b'{"name": "a", "count": 1e999}', b'{"name": NaN}', b'{"name": "\\ud800"}',
    b'{"name": "\xff"}', "{\"name\": \"a\"}".encode("utf-16"), b" "],
    ids=["syntax", "1000 deep", "40 deep", "5000 digits", "1e999", "NaN", "lone surrogate", "not utf-8", "utf-16",
         "blank"])
def test_malformed_json_is_400(client, body):
    response = client.post("/things", data=body, content_type="application/json")
    error = _error(response, 400, "malformed_json")
    assert "\\ud800" not in error["message"] and "9999" not in error["message"]


def test_request_get_json_has_the_same_bounds(app_and_state):
    app = app_and_state[0]
    with app.test_request_context("/", data=b"[" * 1000 + b"]" * 1000, content_type="application/json"):
        from flask import request
        from werkzeug.exceptions import BadRequest

        with pytest.raises(BadRequest):
            request.get_json()


def test_repeated_query_parameters_are_400_whatever_their_order(client):
    for query in ("limit=1&limit=5", "limit=5&limit=1", "limit=3&limit=3"):
        assert "limit" in _error(client.get(f"/things?{query}"), 400, "validation_error")["details"]


def test_a_query_field_taking_several_values_gets_them_all(client):
    assert client.get("/things/tagged?tag=a&limit=2&tag=b").get_json() == {"limit": 2, "tag": ["a", "b"]}
    assert "limit" in _error(client.get("/things/tagged?limit=1&limit=2"), 400, "validation_error")["details"]
    assert client.get("/things?limit=2").get_json() == {"limit": 2}


def test_query_out_of_range_and_unknown_are_400(client):
    assert "limit" in _error(client.get("/things?limit=0"), 400, "validation_error")["details"]
    assert "limit" in _error(client.get("/things?limit=x"), 400, "validation_error")["details"]
    assert "colour" in _error(client.get("/things?colour=red"), 400, "validation_error")["details"]


def test_404_405_409_and_500(client):
    _error(client.get("/nowhere"), 404, "not_found")
    _error(client.delete("/things"), 405, "method_not_allowed")
    _error(client.post("/things", json={"name": "taken"}), 409, "name_taken")
    response = client.post("/things", json={"name": "boom"})
    error = _error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True) and "details" not in error


def test_body_too_large_is_413(client):
    _error(client.post("/things", data="x" * (2 << 20), content_type="application/json"), 413, "payload_too_large")


def test_health_ready_metrics_openapi(app_and_state, client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready", "checks": {"database": True}}
    app_and_state[1]["ready"] = False
    error = _error(client.get("/readyz"), 503, "not_ready")
    assert error["details"] == {"database": False}
    client.get("/things").close()  # counted once sent: a WSGI server closes every answer it sent
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="GET",route="/things",status="200"}' in metrics
    spec = client.get("/openapi.json").get_json()
    assert "/things" in spec["paths"]
    responses = spec["paths"]["/things"]["post"]["responses"]
    assert "400" in responses and "422" not in responses
    assert client.get("/docs").status_code == 200


def test_a_request_is_counted_and_logged_once_its_answer_is_sent(client, caplog):
    caplog.set_level("INFO", logger="bobdesk_shared.web")
    response = client.get("/things?limit=2", headers={"X-Request-Id": "r-1"})
    assert not [record for record in caplog.records if record.getMessage() == "request"]
    response.close()
    line, = [record for record in caplog.records if record.getMessage() == "request"]
    assert (line.method, line.route, line.status, line.request_id) == ("GET", "/things", 200, "r-1")
    assert line.duration_ms >= 0


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc"}).headers["X-Request-Id"] == "abc"
    assert len(client.get("/healthz").headers["X-Request-Id"]) == 32


@pytest.mark.parametrize("error, status", [
    (pymongo_errors.ServerSelectionTimeoutError("no server"), 503),
    (pymongo_errors.AutoReconnect("connection reset"), 503),
    (pymongo_errors.NetworkTimeout("timed out"), 503),
    (pymongo_errors.NotPrimaryError("stepped down"), 503),
    (pymongo_errors.WaitQueueTimeoutError("pool exhausted"), 503),
    (pymongo_errors.ExecutionTimeout("operation exceeded time limit", code=50), 503),
    (pymongo_errors.WTimeoutError("waiting for replication timed out", code=64), 503),
    (pymongo_errors.OperationFailure("unknown operator: $bad", code=2), 500),
])
def test_an_unreachable_database_is_503_with_retry_after(settings_factory, error, status):
    blp = Blueprint("db", __name__)

    @blp.route("/db")
    def db_view():
        raise error

    app, _ = create_app(settings_factory(), import_name=__name__, title="db", blueprints=[blp], ready_checks={})
    response = app.test_client().get("/db")
    if status == 503:
        _error(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) > 0
    else:
        _error(response, 500, "internal_error")
        assert "$bad" not in response.get_data(as_text=True)


def test_not_ready_says_when_to_retry(app_and_state, client):
    app_and_state[1]["ready"] = False
    assert int(client.get("/readyz").headers["Retry-After"]) > 0


def test_options_the_uri_names_win_over_the_defaults():
    from bobdesk_shared.mongo import connect

    named = connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=250&directConnection=true", "probe")
    default = connect("mongodb://127.0.0.1:1/?directConnection=true", "probe")
    try:
        assert named.options.server_selection_timeout == 0.25
        assert default.options.server_selection_timeout == 5
    finally:
        named.close()
        default.close()
