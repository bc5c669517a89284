"""One OpenAPI document per audience, every error documented, and a /docs page that needs nothing
from elsewhere."""

import re

import marshmallow as ma
import pytest
from bobdesk_shared import auth
from bobdesk_shared.errors import Conflict
from bobdesk_shared.schemas import WholeMatch
from bobdesk_shared.web import Blueprint, ErrorSchema, create_app
from flask.views import MethodView


class NameSchema(ma.Schema):
    name = ma.fields.String(required=True)


def _blueprints():
    public = Blueprint("things", __name__, url_prefix="/things")
    internal = Blueprint("internal_things", __name__, url_prefix="/internal/things")

    @public.route("")
    class Things(MethodView):
        @public.doc(security=auth.USER_SECURITY)
        @public.arguments(NameSchema)
        @public.response(201, NameSchema)
        def post(self, body):
            return body

    @public.route("/<thing_id>")
    class Thing(MethodView):
        @public.doc(security=auth.PUBLIC_SECURITY)
        @public.alt_response(404, schema=ErrorSchema, description="No thing of the company has this id.")
        @public.alt_response(409, schema=ErrorSchema, description="The thing is locked.")
        @public.response(200, NameSchema)
        def get(self, thing_id):
            raise Conflict("locked")

    @internal.route("/sync")
    class Sync(MethodView):
        @internal.doc(security=auth.SERVICE_SECURITY)
        @internal.response(204)
        def post(self):
            return ""

    return public, internal


@pytest.fixture
def client(settings_factory):
    public, internal = _blueprints()
    app, _ = create_app(settings_factory(), import_name=__name__, title="Things", blueprints=[public],
                        internal_blueprints=[internal], ready_checks={})
    return app.test_client()


def test_each_audience_has_its_own_document(client):
    public = client.get("/openapi.json").get_json()
    internal = client.get("/internal/openapi.json").get_json()
    assert set(public["paths"]) == {"/things", "/things/{thing_id}"}
    assert set(internal["paths"]) == {"/internal/things/sync"}
    assert set(public["components"]["securitySchemes"]) == {"sessionCookie", "userToken", "publicToken"}
    assert set(internal["components"]["securitySchemes"]) == {"serviceToken"}
    assert "/internal/docs" not in {rule.rule for rule in client.application.url_map.iter_rules()}


def _error_statuses(operation):
    return {status for status, response in operation["responses"].items()
            if response.get("content", {}).get("application/json", {}).get("schema") == {
                "$ref": "#/components/schemas/Error"}}


def test_every_operation_declares_the_errors_it_can_answer(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    create, read = paths["/things"]["post"], paths["/things/{thing_id}"]["get"]
    assert _error_statuses(create) == {"400", "401", "403", "413", "415", "503"}
    assert _error_statuses(read) == {"401", "403", "404", "409", "503"}
    # A view's own description wins over the generic one.
    assert read["responses"]["404"]["description"] == "No thing of the company has this id."
    assert list(read["responses"]) == ["200", "401", "403", "404", "409", "503", "default"]
    internal = client.get("/internal/openapi.json").get_json()["paths"]["/internal/things/sync"]["post"]
    assert _error_statuses(internal) == {"401", "403", "503"}


def test_a_method_a_path_does_not_list_is_405_with_allow(client):
    response = client.delete("/things")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


def test_docs_page_loads_everything_from_the_component(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp and "style-src 'self';" in csp
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "http" not in html  # no inline script, nothing from elsewhere
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and response.content_length > 100, asset
    assert 'data-spec-url="/openapi.json"' in html


def test_a_component_without_client_routes_serves_no_document(settings_factory):
    app, api = create_app(settings_factory(), import_name=__name__, title="Ops", blueprints=[], ready_checks={})
    client = app.test_client()
    assert api is None
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/docs").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_whole_match_agrees_with_its_documented_pattern():
    validator = WholeMatch(r"[a-z]+", error="letters")
    assert validator("abc") == "abc"
    for value in ("abc\n", "ab1", "", "\nabc"):
        with pytest.raises(ma.ValidationError):
            validator(value)
    # JSON Schema's `pattern` is a search: only an anchored pattern says "the whole value".
    assert validator.regex.pattern == "^(?:[a-z]+)$"
