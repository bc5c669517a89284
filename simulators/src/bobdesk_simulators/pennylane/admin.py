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
from flask import jsonify
from flask.views import MethodView

from .. import admin as admin_routes
from .. import faults
from ..admin import account_or_404, current_store
from . import state
from .state import ENDPOINTS, RateLimit

admin = Blueprint("admin", __name__, url_prefix="/_admin", description="Drive the simulator (tests, demo).")


class RateLimitSchema(StrictSchema):
    limit = JsonInteger(required=True, validate=ma.validate.Range(min=1, max=100_000))
    window_seconds = JsonInteger(required=True, validate=ma.validate.Range(min=1, max=3600))


class AccountUpdateSchema(admin_routes.AccountUpdateSchema):
    rate_limit = ma.fields.Nested(RateLimitSchema)
    changelog_retention_seconds = JsonInteger(validate=ma.validate.Range(min=0, max=366 * 86400))


class InvoiceCreateSchema(StrictSchema):
    fields = ma.fields.Dict(load_default=dict, metadata={"description": "Fields over a generated invoice."})
    raw = ma.fields.Dict(metadata={"description": "A document stored exactly as given (bad data tests)."})


class FieldsSchema(StrictSchema):
    fields = ma.fields.Dict(load_default=dict)


def _secrets(account: state.Account) -> dict:
    return {"api_key": account.api_key}


def _update(account: state.Account, body: dict) -> None:
    if "rate_limit" in body:
        account.rate_limit = RateLimit(**body["rate_limit"])
    if "changelog_retention_seconds" in body:
        account.retention = dt.timedelta(seconds=body["changelog_retention_seconds"])


admin_routes.add_account_routes(
    admin, create_schema=admin_routes.AccountCreateSchema, update_schema=AccountUpdateSchema,
    create=lambda store, body: store.create_account(body.get("id"), body.get("api_key")), update=_update,
    secrets=_secrets)
faults.add_admin_routes(admin, ENDPOINTS, account_or_404, lambda: current_store().lock, state.Stats)


@admin.route("/accounts/<account_id>/invoices")
class AccountInvoices(MethodView):
    def get(self, account_id):
        account = account_or_404(account_id)
        with current_store().lock:
            return jsonify(invoices=[account.invoices[i] for i in account.invoice_ids])

    @admin.arguments(InvoiceCreateSchema)
    def post(self, body, account_id):
        account_or_404(account_id)
        try:
            document = current_store().add_invoice(account_id, body["fields"], raw=body.get("raw"))
        except state.Conflict as exc:
            raise Conflict(str(exc)) from None
        return jsonify(document), 201


@admin.route("/accounts/<account_id>/invoices/<int:invoice_id>")
class AccountInvoice(MethodView):
    def get(self, account_id, invoice_id):
        document = current_store().get_invoice(account_or_404(account_id), invoice_id)
        if document is None:
            raise NotFound(f"No invoice {invoice_id}.")
        return jsonify(document)

    @admin.arguments(FieldsSchema)
    def patch(self, body, account_id, invoice_id):
        account_or_404(account_id)
        try:
            return jsonify(current_store().update_invoice(account_id, invoice_id, body["fields"]))
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None

    def delete(self, account_id, invoice_id):
        account_or_404(account_id)
        try:
            current_store().delete_invoice(account_id, invoice_id)
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None
        return "", 204


@admin.route("/accounts/<account_id>/invoices/<int:invoice_id>/archive")
class ArchiveInvoice(MethodView):
    def post(self, account_id, invoice_id):
        account_or_404(account_id)
        try:
            return jsonify(current_store().archive_invoice(account_id, invoice_id))
        except state.NotFound:
            raise NotFound(f"No invoice {invoice_id}.") from None


@admin.route("/accounts/<account_id>/suppliers")
class AccountSuppliers(MethodView):
    def get(self, account_id):
        account = account_or_404(account_id)
        with current_store().lock:
            return jsonify(suppliers=list(account.suppliers.values()))

    @admin.arguments(FieldsSchema)
    def post(self, body, account_id):
        account_or_404(account_id)
        return jsonify(current_store().add_supplier(account_id, body["fields"])), 201


@admin.route("/accounts/<account_id>/suppliers/<int:supplier_id>")
class AccountSupplier(MethodView):
    @admin.arguments(FieldsSchema)
    def patch(self, body, account_id, supplier_id):
        account_or_404(account_id)
        try:
            return jsonify(current_store().update_supplier(account_id, supplier_id, body["fields"]))
        except state.NotFound:
            raise NotFound(f"No supplier {supplier_id}.") from None


@admin.route("/accounts/<account_id>/changelog/expire")
class ExpireChangelog(MethodView):
    def post(self, account_id):
        account_or_404(account_id)
        return jsonify(dropped=current_store().expire_changes(account_id))

