"""The Yooz simulator's HTTP API: the Yooz API our adapter speaks, plus `/_admin/...` to drive it.

Yooz API: `GET /invoices` (updated_since, cursor, limit 1..100, ordered by
`(updated_at, id)`, updated_since inclusive) and `GET /invoices/{id}`, with
`Authorization: Bearer <apiKey>` (401 otherwise). Each account's fault
injection applies to these two endpoints only: throttling (429 + Retry-After),
server errors (500/502/503), slowness and malformed answers.
"""

from __future__ import annotations

import json
import time
from functools import wraps

import marshmallow as ma
from bobdesk_shared.errors import BadRequest, Conflict, NotFound, Unauthorized
from bobdesk_shared.schemas import JsonBoolean, StrictSchema
from bobdesk_shared.timeutil import iso_ms, parse_iso, utcnow
from bobdesk_shared.web import Blueprint, create_app
from flask import Response, g, jsonify, request
from flask.views import MethodView

from .. import admin as admin_routes
from .. import faults
from ..admin import account_or_404, current_store
from . import state, webhooks
from .demo_data import iso_z
from .state import ENDPOINTS, Store

yooz = Blueprint("yooz", __name__, description="The Yooz API our adapter speaks.")
admin = Blueprint("admin", __name__, url_prefix="/_admin", description="Drive the simulator (tests, demo).")

_MALFORMED_LISTS = (b'{"items": [{"id": "YZ-', b"<html><body>Service Unavailable</body></html>",
                    b'{"items": null, "next_cursor": null}', b'{"data": []}', b'{"items": "[]"}')
_MALFORMED_ONES = (b'{"id": "YZ-', b"<html><body>Oops</body></html>", b"[]")


# --- the Yooz API ------------------------------------------------------------

def yooz_endpoint(endpoint: str):
    """Authenticate, count, then inject this account's faults around the view."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            store = current_store()
            account = store.by_authorization(request.headers.get("Authorization", ""))
            if account is None:
                raise Unauthorized("Invalid API key.", code="invalid_api_key")
            faults.count_request(store.lock, account.stats, endpoint, iso_ms(utcnow()))
            g.account = account
            with faults.in_flight(store.lock, account):
                return faults.with_faults(store.lock, store.rng, account, endpoint, lambda: view(*args, **kwargs),
                                          _MALFORMED_LISTS if endpoint == "list" else _MALFORMED_ONES)

        return wrapper

    return decorate


@yooz.route("/invoices")
class Invoices(MethodView):
    @yooz_endpoint("list")
    def get(self):
        unknown = set(request.args) - {"updated_since", "cursor", "limit"}
        if unknown:
            raise BadRequest(f"Unknown parameters: {', '.join(sorted(unknown))}.")
        try:
            since = iso_z(parse_iso(request.args["updated_since"])) if "updated_since" in request.args else ""
        except ValueError:
            raise BadRequest("updated_since must be an ISO-8601 time.", code="invalid_updated_since") from None
        raw_limit = request.args.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise BadRequest("limit must be between 1 and 100.", code="invalid_limit")
        cursor = None
        if request.args.get("cursor"):
            try:
                cursor = state.decode_cursor(request.args["cursor"])
            except ValueError:
                raise BadRequest("The cursor is invalid.", code="invalid_cursor") from None
        items, next_cursor = current_store().list_invoices(g.account, since, cursor, int(raw_limit))
        return Response(json.dumps({"items": items, "next_cursor": next_cursor}), content_type="application/json")


@yooz.route("/invoices/<invoice_id>")
class OneInvoice(MethodView):
    @yooz_endpoint("get")
    def get(self, invoice_id):
        document = current_store().get_invoice(g.account, invoice_id)
        if document is None:
            raise NotFound(f"No invoice {invoice_id}.")
        return Response(json.dumps(document), content_type="application/json")


# --- admin -----------------------------------------------------------------------

class AccountCreateSchema(admin_routes.AccountCreateSchema):
    webhook_secret = ma.fields.String(validate=ma.validate.Length(min=8, max=200))
    webhook_url = ma.fields.URL(require_tld=False, allow_none=True)


class AccountUpdateSchema(admin_routes.AccountUpdateSchema):
    webhook_secrets = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=8, max=200)),
                                     validate=ma.validate.Length(min=1, max=5))
    webhook_url = ma.fields.URL(require_tld=False, allow_none=True)


class InvoiceCreateSchema(StrictSchema):
    fields = ma.fields.Dict(load_default=dict, metadata={"description": "Fields over a generated invoice."})
    raw = ma.fields.Dict(metadata={"description": "A document stored exactly as given (bad data tests)."})
    webhook = JsonBoolean(load_default=True, metadata={"description": "Notify webhook_url, if set."})


class InvoiceUpdateSchema(StrictSchema):
    fields = ma.fields.Dict(load_default=dict)
    webhook = JsonBoolean(load_default=True)


class WebhookSendSchema(StrictSchema):
    type = ma.fields.String(load_default="invoice.created")
    invoice_id = ma.fields.String(required=True)
    url = ma.fields.URL(require_tld=False, metadata={"description": "Default: the account's webhook_url."})
    event_id = ma.fields.String(metadata={"description": "Reuse an id to replay an event."})
    timestamp_offset = ma.fields.Integer(load_default=0, metadata={"description": "Seconds added to t= (stale)."})
    secret = ma.fields.String(metadata={"description": "Sign with this instead of the account's secrets."})


def _secrets(account: state.Account) -> dict:
    return {"api_key": account.api_key, "webhook_secrets": list(account.webhook_secrets)}


def _notify(account: state.Account, event_type: str, invoice_id: str, wanted: bool) -> None:
    if wanted and account.webhook_url:
        webhooks.deliver_later(account.webhook_url, webhooks.build_event(event_type, invoice_id),
                               list(account.webhook_secrets))


def _create(store: Store, body: dict) -> state.Account:
    return store.create_account(body.get("id"), body.get("api_key"), body.get("webhook_secret"),
                                body.get("webhook_url"))


def _update(account: state.Account, body: dict) -> None:
    if "webhook_secrets" in body:
        account.webhook_secrets = list(body["webhook_secrets"])
    if "webhook_url" in body:
        account.webhook_url = body["webhook_url"]


admin_routes.add_account_routes(admin, create_schema=AccountCreateSchema, update_schema=AccountUpdateSchema,
                                create=_create, update=_update, secrets=_secrets)
faults.add_admin_routes(admin, ENDPOINTS, account_or_404, lambda: current_store().lock, state.Stats)


@admin.route("/accounts/<account_id>/invoices")
class AccountInvoices(MethodView):
    def get(self, account_id):
        account = account_or_404(account_id)
        with current_store().lock:
            return jsonify(invoices=[account.invoices[i] for _, i in account.order])

    @admin.arguments(InvoiceCreateSchema)
    def post(self, body, account_id):
        account_or_404(account_id)
        try:
            document = current_store().add_invoice(account_id, body["fields"], raw=body.get("raw"))
        except state.Conflict as exc:
            raise Conflict(str(exc)) from None
        _notify(current_store().account(account_id), "invoice.created", document["id"], body["webhook"])
        return jsonify(document), 201


@admin.route("/accounts/<account_id>/invoices/<invoice_id>")
class AccountInvoice(MethodView):
    def get(self, account_id, invoice_id):
        document = current_store().get_invoice(account_or_404(account_id), invoice_id)
        if document is None:
            raise NotFound(f"No invoice {invoice_id}.")
        return jsonify(document)

    @admin.arguments(InvoiceUpdateSchema)
    def patch(self, body, account_id, invoice_id):
        account = account_or_404(account_id)
        try:
            document = current_store().update_invoice(account_id, invoice_id, body["fields"])
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None
        _notify(account, "invoice.updated", invoice_id, body["webhook"])
        return jsonify(document)

    def delete(self, account_id, invoice_id):
        account = account_or_404(account_id)
        try:
            document = current_store().delete_invoice(account_id, invoice_id)
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None
        _notify(account, "invoice.deleted", invoice_id, request.args.get("webhook", "1") != "0")
        return jsonify(document)


@admin.route("/accounts/<account_id>/webhooks")
class SendWebhook(MethodView):
    @admin.arguments(WebhookSendSchema)
    def post(self, body, account_id):
        account = account_or_404(account_id)
        url = body.get("url") or account.webhook_url
        if not url:
            raise BadRequest("No url given and the account has no webhook_url.", code="no_webhook_url")
        event = webhooks.build_event(body["type"], body["invoice_id"], body.get("event_id"))
        secrets_ = [body["secret"]] if body.get("secret") else list(account.webhook_secrets)
        return jsonify(webhooks.deliver(url, event, secrets_, timestamp=int(time.time()) + body["timestamp_offset"]))


def build_app(store: Store, settings):
    app, _ = create_app(settings, import_name=__name__, title="Yooz simulator", blueprints=[yooz, admin],
                        ready_checks={},
                        description=__doc__, max_body_bytes=8 << 20)
    app.config["SIM_STORE"] = store
    return app
