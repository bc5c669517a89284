"""The Pennylane simulator's HTTP API: the part of Pennylane's public API v2 our adapter speaks.

Under `/api/external/v2`, with `Authorization: Bearer <token>` (401 otherwise):
`GET /supplier_invoices` (cursor, limit 1..100, filter `[{"field": "id", "operator":
"in", "value": [...]}]`, by id ascending), `GET /supplier_invoices/{id}`,
`GET /suppliers/{id}` and `GET /changelogs/supplier_invoices` (start_date or cursor,
limit 1..1000; 422 once start_date is older than the changes kept). Every
authenticated answer carries `ratelimit-limit`, `ratelimit-remaining` and
`ratelimit-reset`; past the token's budget (25 per 5 s) it is 429 with
`retry-after`. Each account's fault injection applies to these endpoints only:
throttling (429 + retry-after), server errors (500/502/503), slowness and
malformed answers. The admin API that drives it is `admin.py`.
"""

from __future__ import annotations

import json
from functools import wraps

from bobdesk_shared.errors import ApiError, BadRequest, NotFound, Unauthorized
from bobdesk_shared.timeutil import parse_iso
from bobdesk_shared.web import Blueprint, create_app
from flask import Response, after_this_request, g, request
from flask.views import MethodView

from .. import faults
from ..admin import current_store
from . import state
from .admin import admin
from .state import Store

API_PREFIX = "/api/external/v2"
MAX_FILTER_IDS = 100

pennylane = Blueprint("pennylane", __name__, url_prefix=API_PREFIX,
                      description="The Pennylane API v2 subset our adapter speaks.")

_MALFORMED_LISTS = (b'{"items": [{"id": 12', b"<html><body>Service Unavailable</body></html>",
                    b'{"items": null, "has_more": false}', b'{"data": []}', b'{"items": [], "has_more": "no"}')
_MALFORMED_ONES = (b'{"id": 12', b"<html><body>Oops</body></html>", b"[]")


class Unprocessable(ApiError):
    status, code, message = 422, "unprocessable_entity", "The request cannot be processed."


def pennylane_endpoint(endpoint: str):
    """Authenticate, spend the token's budget, count, then inject this account's faults around the view."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            store = current_store()
            account = store.by_authorization(request.headers.get("Authorization", ""))
            if account is None:
                raise Unauthorized("Invalid API token.", code="invalid_token")
            decision = store.take(account)
            after_this_request(lambda response: _with_headers(response, decision.headers()))
            faults.count_request(store.lock, account.stats, endpoint, state.rfc3339(store.now()))
            with store.lock:
                if account.stats.first_request_at is None:
                    account.stats.first_request_at = store.wall()
            if not decision.allowed:
                with store.lock:
                    account.stats.rate_limited += 1
                return faults.throttled(decision.retry_after)
            g.account = account
            with faults.in_flight(store.lock, account):
                return faults.with_faults(store.lock, store.rng, account, endpoint, lambda: view(*args, **kwargs),
                                          _MALFORMED_ONES if endpoint in ("get", "supplier") else _MALFORMED_LISTS)

        return wrapper

    return decorate


def _with_headers(response: Response, headers: dict) -> Response:
    response.headers.update(headers)
    return response


def _only(*names: str) -> None:
    unknown = set(request.args) - set(names)
    if unknown:
        raise BadRequest(f"Unknown parameters: {', '.join(sorted(unknown))}.")


def _limit(maximum: int, default: int = 20) -> int:
    raw = request.args.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}.", code="invalid_limit")
    return int(raw)


def _cursor() -> int | None:
    if not request.args.get("cursor"):
        return None
    try:
        return state.decode_cursor(request.args["cursor"])
    except ValueError:
        raise BadRequest("The cursor is invalid.", code="invalid_cursor") from None


def parse_filter(raw: str) -> list[int]:
    """The ids of `[{"field": "id", "operator": "in", "value": [<ids>]}]`; BadRequest for anything else."""
    try:
        rules = json.loads(raw)
    except ValueError:
        raise BadRequest("filter must be a JSON array.", code="invalid_filter") from None
    if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], dict) \
            or set(rules[0]) != {"field", "operator", "value"}:
        raise BadRequest('filter must be [{"field", "operator", "value"}].', code="invalid_filter")
    rule = rules[0]
    if rule["field"] != "id" or rule["operator"] != "in":
        raise BadRequest("Only the id field with the in operator is supported.", code="invalid_filter")
    ids = rule["value"]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_FILTER_IDS \
            or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise BadRequest(f"value must be a list of 1 to {MAX_FILTER_IDS} integer ids.", code="invalid_filter")
    return ids


def _page(items: list, next_position: int | None) -> Response:
    body = {"items": items, "has_more": next_position is not None,
            "next_cursor": state.encode_cursor(next_position) if next_position is not None else None}
    return Response(json.dumps(body), content_type="application/json")


def _one(document: dict | None, what: str, identifier: int) -> Response:
    if document is None:
        raise NotFound(f"No {what} {identifier}.")
    return Response(json.dumps(document), content_type="application/json")


@pennylane.route("/supplier_invoices")
class SupplierInvoices(MethodView):
    @pennylane_endpoint("list")
    def get(self):
        _only("cursor", "limit", "filter")
        limit, after = _limit(100), _cursor()
        ids = parse_filter(request.args["filter"]) if "filter" in request.args else None
        items, next_position = current_store().list_invoices(g.account, after, ids, limit)
        return _page(items, next_position)


@pennylane.route("/supplier_invoices/<int:invoice_id>")
class OneSupplierInvoice(MethodView):
    @pennylane_endpoint("get")
    def get(self, invoice_id):
        return _one(current_store().get_invoice(g.account, invoice_id), "supplier invoice", invoice_id)


@pennylane.route("/suppliers/<int:supplier_id>")
class OneSupplier(MethodView):
    @pennylane_endpoint("supplier")
    def get(self, supplier_id):
        return _one(current_store().get_supplier(g.account, supplier_id), "supplier", supplier_id)


@pennylane.route("/changelogs/supplier_invoices")
class SupplierInvoiceChanges(MethodView):
    @pennylane_endpoint("changelog")
    def get(self):
        _only("start_date", "cursor", "limit")
        limit, after = _limit(1000), _cursor()
        start = None
        if request.args.get("start_date"):
            if after is not None:
                raise BadRequest("start_date and cursor cannot be combined.", code="invalid_parameters")
            try:
                start = parse_iso(request.args["start_date"])
            except ValueError:
                raise BadRequest("start_date must be an RFC 3339 time.", code="invalid_start_date") from None
        try:
            items, next_position = current_store().read_changes(g.account, start, after, limit)
        except state.Expired as exc:
            raise Unprocessable(f"{exc}: list the supplier invoices again.", code="changelog_expired") from None
        return _page(items, next_position)


def build_app(store: Store, settings):
    app, _ = create_app(settings, import_name=__name__, title="Pennylane simulator", blueprints=[pennylane, admin],
                        ready_checks={}, description=__doc__, max_body_bytes=8 << 20)
    app.config["SIM_STORE"] = store
    return app
