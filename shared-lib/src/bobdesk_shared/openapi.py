"""The OpenAPI documents and the `/docs` page of every HTTP component.

- One document per audience. `/openapi.json` (and `/docs`) holds the routes clients
  call; `/internal/openapi.json` the routes between components (docs/internal-api.md),
  which the Ingress never routes. Each document names only the security schemes its
  operations use.
- Every operation lists every error it can answer, in the shared error shape: a view
  declares the errors of its own domain (a 409, a specific 404), and `ERROR_RULES`
  adds the ones that follow from what the operation declares (its security, its
  parameters, its body), so no view can forget them.
- `/docs` is Swagger UI from the flask-swagger-ui package, served by the component
  itself: nothing is fetched beyond the component, and the page has no inline script,
  so it runs under a strict Content-Security-Policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import flask
import flask_smorest
import flask_swagger_ui
from apispec import BasePlugin
from apispec.ext.marshmallow.common import resolve_schema_cls

from .auth import SECURITY_SCHEMES

OPENAPI_VERSION = "3.0.3"
ERROR_SCHEMA_NAME = "Error"  # the name apispec gives `Api.ERROR_SCHEMA` (ErrorSchema)
SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).parent / "dist"
STATIC_DIR = Path(__file__).parent / "static"

# Nothing from elsewhere, nothing inline (Swagger UI styles elements through the CSSOM, which a
# CSP allows); `data:` images are Swagger UI's own icons.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

ERRORS_NOTE = """

**Errors.** Every 4xx/5xx answer is `{"error": {"code": "<snake_case>", "message": "<text>",
"details"?: {...}}}`. A method a path does not list is 405 with an `Allow` header."""

Operation = dict


@dataclasses.dataclass(frozen=True)
class ErrorRule:
    """An error `status` that every operation for which `applies(path, method, operation)` holds can answer."""

    status: int
    description: str
    applies: Callable[[str, str, Operation], bool]


def _secured(path: str, method: str, operation: Operation) -> bool:
    return bool(operation.get("security"))


def _takes_input(path: str, method: str, operation: Operation) -> bool:
    return "requestBody" in operation or any(
        isinstance(p, dict) and p.get("in") != "path" for p in operation.get("parameters", []))


def _names_a_resource(path: str, method: str, operation: Operation) -> bool:
    return "{" in path


def _has_body(path: str, method: str, operation: Operation) -> bool:
    return "requestBody" in operation


def _always(path: str, method: str, operation: Operation) -> bool:
    return True


ERROR_RULES: list[ErrorRule] = [
    ErrorRule(400, "A parameter or the body is invalid: `validation_error` (with `details` per field) "
                   "or `malformed_json`.", _takes_input),
    ErrorRule(401, "No valid credential: missing, malformed, expired or of another kind, or a session "
                   "cookie and a Bearer token that disagree (`unauthorized`, `invalid_token`, "
                   "`token_expired`).", _secured),
    ErrorRule(403, "The token is valid but does not grant this operation (`missing_permission`, "
                   "`missing_scope`).", _secured),
    ErrorRule(404, "Nothing with this id for the caller: unknown, deleted, another company's or "
                   "malformed (`not_found`).", _names_a_resource),
    ErrorRule(413, "The body is larger than this component accepts (`payload_too_large`).", _has_body),
    ErrorRule(415, "The body is not `application/json` (`unsupported_media_type`).", _has_body),
    ErrorRule(503, "A database or a component this one calls is unreachable (`unavailable`); "
                   "retry after `Retry-After` seconds.", _always),
]


class CompletionPlugin(BasePlugin):
    """apispec plugin completing the document with what views and schemas cannot say themselves:
    each operation's errors (`ERROR_RULES`; a response a view documents itself is kept), the
    security schemes it names, and the JSON Schema keywords marshmallow has no field for, which a
    schema lists in `Meta.json_schema` (e.g. `{"minProperties": 1}`)."""

    def __init__(self, rules: Iterable[ErrorRule]):
        self.rules = list(rules)
        self.spec = None

    def init_spec(self, spec):
        self.spec = spec

    def schema_helper(self, name, definition, **kwargs):
        schema = kwargs.get("schema")
        meta = getattr(resolve_schema_cls(schema), "Meta", None) if schema is not None else None
        return dict(getattr(meta, "json_schema", {}))

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            self._register_schemes(operation)
            responses = {str(int(k)) if k != "default" else k: v
                         for k, v in operation.setdefault("responses", {}).items()}
            for rule in self.rules:
                current = responses.get(str(rule.status))
                # A bare name is flask-smorest's generic response ("BAD_REQUEST"): ours says more.
                if (current is None or isinstance(current, str)) and rule.applies(path, method, operation):
                    responses[str(rule.status)] = self._error(rule.description)
            operation["responses"] = dict(sorted(responses.items(), key=lambda item: (item[0] == "default", item[0])))

    def _error(self, description: str) -> dict:
        schema = self.spec.components.get_ref("schema", ERROR_SCHEMA_NAME)
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def _register_schemes(self, operation: Operation) -> None:
        known = self.spec.components.security_schemes
        for requirement in operation.get("security", []):
            for name in requirement:
                if name not in known:
                    self.spec.components.security_scheme(name, SECURITY_SCHEMES[name])


def register_apis(app: flask.Flask, api_class: type[flask_smorest.Api], *, title: str, description: str,
                  blueprints: Iterable[flask_smorest.Blueprint],
                  internal_blueprints: Iterable[flask_smorest.Blueprint]) -> flask_smorest.Api | None:
    """The clients' API (`/openapi.json`, `/docs`) and the internal one (`/internal/openapi.json`),
    each with its own blueprints; a component without one of them serves no such document."""
    documents = [("", title, description + ERRORS_NOTE, list(blueprints), "/"),
                 ("INTERNAL", f"{title} (internal)", "Between components only: docs/internal-api.md." + ERRORS_NOTE,
                  list(internal_blueprints), "/internal/")]
    apis = {}
    for prefix, doc_title, doc_description, doc_blueprints, url_prefix in documents:
        if not doc_blueprints:
            continue
        key = f"{prefix}_" if prefix else ""
        app.config.update({
            f"{key}API_TITLE": doc_title, f"{key}API_VERSION": "1.0", f"{key}OPENAPI_VERSION": OPENAPI_VERSION,
            f"{key}OPENAPI_URL_PREFIX": url_prefix, f"{key}OPENAPI_JSON_PATH": "openapi.json",
            f"{key}API_SPEC_OPTIONS": {"info": {"description": doc_description}},
        })
        api = api_class(app, config_prefix=prefix,
                        spec_kwargs={"extra_plugins": [CompletionPlugin(ERROR_RULES)]})
        for blueprint in doc_blueprints:
            api.register_blueprint(blueprint)
        apis[prefix] = api
    if "" in apis:
        app.register_blueprint(docs_blueprint(title))
    return apis.get("")


def docs_blueprint(title: str) -> flask.Blueprint:
    """`/docs`: Swagger UI on `/openapi.json`, its assets from the installed package."""
    blueprint = flask.Blueprint("docs", __name__, url_prefix="/docs",
                                static_folder=str(SWAGGER_UI_DIR), static_url_path="/swagger-ui")

    @blueprint.get("")
    def page():
        html = flask.render_template_string(DOCS_PAGE, title=title, spec_url=flask.url_for("api-docs.openapi_json"))
        response = flask.Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCS_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @blueprint.get("/docs.js")
    def script():
        return flask.send_from_directory(STATIC_DIR, "docs.js", mimetype="text/javascript")

    return blueprint


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<link rel="icon" type="image/png" href="{{ url_for('docs.static', filename='favicon-32x32.png') }}">
<link rel="stylesheet" href="{{ url_for('docs.static', filename='swagger-ui.css') }}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{{ spec_url }}"></div>
<script src="{{ url_for('docs.static', filename='swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('docs.script') }}"></script>
</body>
</html>
"""
