"""`/_admin/...`: drive the Pennylane simulator (tests, demo, bench).

Accounts (created with N generated invoices), their invoices (add, update,
archive, delete; `raw` stores a document exactly as given, for bad data), their
Suppliers, the changelog (`expire` forgets every change kept, as 28 days without
a poll would), the rate limit and retention, fault injection and statistics.
"""

from __future__ import annotations

import datetime as dt

import marshmallow as ma
from bobdesk_shared.errors import Conflict, NotFound
from bobdesk_shared.schemas import JsonInteger, StrictSchema
from bobdesk_shared.web import Blueprint
from flask import current_app, jsonify
from flask.views import MethodView

from .. import faults
from . import state
from .state import ENDPOINTS, RateLimit, Store

admin = Blueprint("admin", __name__, url_prefix="/_admin", description="Drive the simulator (tests, demo).")


def _store() -> Store:
    return current_app.config["SIM_STORE"]


def _account_or_404(account_id: str) -> state.Account:
    try:
        return _store().account(account_id)
    except state.NotFound:
        raise NotFound(f"No account {account_id}.") from None


class RateLimitSchema(StrictSchema):
    limit = JsonInteger(required=True, validate=ma.validate.Range(min=1, max=100_000))
    window_seconds = JsonInteger(required=True, validate=ma.validate.Range(min=1, max=3600))


class AccountCreateSchema(StrictSchema):
    id = ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$"))
    api_key = ma.fields.String(validate=ma.validate.Length(min=8, max=200))
    invoices = JsonInteger(load_default=0, validate=ma.validate.Range(min=0, max=100_000))


class AccountUpdateSchema(StrictSchema):
    api_key = ma.fields.String(validate=ma.validate.Length(min=8, max=200))
    rate_limit = ma.fields.Nested(RateLimitSchema)
    changelog_retention_seconds = JsonInteger(validate=ma.validate.Range(min=0, max=366 * 86400))


class InvoiceCreateSchema(StrictSchema):
    fields = ma.fields.Dict(load_default=dict, metadata={"description": "Fields over a generated invoice."})
    raw = ma.fields.Dict(metadata={"description": "A document stored exactly as given (bad data tests)."})


class FieldsSchema(StrictSchema):
    fields = ma.fields.Dict(load_default=dict)


class GenerateSchema(StrictSchema):
    count = JsonInteger(required=True, validate=ma.validate.Range(min=1, max=100_000))


def _secrets(account: state.Account) -> dict:
    return {"api_key": account.api_key}


@admin.route("/accounts")
class Accounts(MethodView):
    def get(self):
        store = _store()
        with store.lock:
            return jsonify(accounts=[a.summary() for a in store.accounts.values()])

    @admin.arguments(AccountCreateSchema)
    def post(self, body):
        store = _store()
        try:
            account = store.create_account(body.get("id"), body.get("api_key"))
        except state.Conflict as exc:
            raise Conflict(str(exc)) from None
        if body["invoices"]:
            store.generate(account.id, body["invoices"])
        with store.lock:
            return jsonify({**account.summary(), **_secrets(account)}), 201


@admin.route("/accounts/<account_id>")
class OneAccount(MethodView):
    def get(self, account_id):
        account = _account_or_404(account_id)
        with _store().lock:
            return jsonify(account.summary())

    @admin.arguments(AccountUpdateSchema)
    def patch(self, body, account_id):
        store = _store()
        account = _account_or_404(account_id)
        with store.lock:
            if "api_key" in body:
                if any(a.api_key == body["api_key"] for a in store.accounts.values() if a is not account):
                    raise Conflict("Another account has this API token.")
                account.api_key = body["api_key"]
            if "rate_limit" in body:
                account.rate_limit = RateLimit(**body["rate_limit"])
            if "changelog_retention_seconds" in body:
                account.retention = dt.timedelta(seconds=body["changelog_retention_seconds"])
            return jsonify(account.summary())


faults.add_admin_routes(admin, ENDPOINTS, _account_or_404, lambda: _store().lock, state.Stats)


@admin.route("/accounts/<account_id>/invoices")
class AccountInvoices(MethodView):
    def get(self, account_id):
        account = _account_or_404(account_id)
        with _store().lock:
            return jsonify(invoices=[account.invoices[i] for i in account.invoice_ids])

    @admin.arguments(InvoiceCreateSchema)
    def post(self, body, account_id):
        _account_or_404(account_id)
        try:
            document = _store().add_invoice(account_id, body["fields"], raw=body.get("raw"))
        except state.Conflict as exc:
            raise Conflict(str(exc)) from None
        return jsonify(document), 201


@admin.route("/accounts/<account_id>/invoices/generate")
class GenerateInvoices(MethodView):
    @admin.arguments(GenerateSchema)
    def post(self, body, account_id):
        _account_or_404(account_id)
        return jsonify(created=_store().generate(account_id, body["count"])), 201


@admin.route("/accounts/<account_id>/invoices/<int:invoice_id>")
class AccountInvoice(MethodView):
    def get(self, account_id, invoice_id):
        document = _store().get_invoice(_account_or_404(account_id), invoice_id)
        if document is None:
            raise NotFound(f"No invoice {invoice_id}.")
        return jsonify(document)

    @admin.arguments(FieldsSchema)
    def patch(self, body, account_id, invoice_id):
        _account_or_404(account_id)
        try:
            return jsonify(_store().update_invoice(account_id, invoice_id, body["fields"]))
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None

    def delete(self, account_id, invoice_id):
        _account_or_404(account_id)
        try:
            _store().delete_invoice(account_id, invoice_id)
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None
        return "", 204


@admin.route("/accounts/<account_id>/invoices/<int:invoice_id>/archive")
class ArchiveInvoice(MethodView):
    def post(self, account_id, invoice_id):
        _account_or_404(account_id)
        try:
            return jsonify(_store().archive_invoice(account_id, invoice_id))
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None


@admin.route("/accounts/<account_id>/suppliers")
class AccountSuppliers(MethodView):
    def get(self, account_id):
        account = _account_or_404(account_id)
        with _store().lock:
            return jsonify(suppliers=list(account.suppliers.values()))

    @admin.arguments(FieldsSchema)
    def post(self, body, account_id):
        _account_or_404(account_id)
        return jsonify(_store().add_supplier(account_id, body["fields"])), 201


@admin.route("/accounts/<account_id>/suppliers/<int:supplier_id>")
class AccountSupplier(MethodView):
    @admin.arguments(FieldsSchema)
    def patch(self, body, account_id, supplier_id):
        _account_or_404(account_id)
        try:
            return jsonify(_store().update_supplier(account_id, supplier_id, body["fields"]))
        except state.NotFound:
            raise NotFound(f"No supplier {supplier_id}.") from None


@admin.route("/accounts/<account_id>/changelog/expire")
class ExpireChangelog(MethodView):
    def post(self, account_id):
        _account_or_404(account_id)
        return jsonify(dropped=_store().expire_changes(account_id))

