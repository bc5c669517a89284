"""The `/_admin` routes every simulator has: its accounts (list, create with generated invoices, read,
update) and invoices generated on demand. A simulator passes its own schemas and what its accounts
hold beyond an id and an API key; the routes of its invoices, which differ, stay its own."""

from __future__ import annotations

from collections.abc import Callable

import marshmallow as ma
from bobdesk_shared.errors import Conflict, NotFound
from bobdesk_shared.schemas import JsonInteger, StrictSchema
from bobdesk_shared.web import Blueprint
from flask import current_app, jsonify
from flask.views import MethodView

from . import accounts


class AccountCreateSchema(StrictSchema):
    id = ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$"))
    api_key = ma.fields.String(validate=ma.validate.Length(min=8, max=200))
    invoices = JsonInteger(load_default=0, validate=ma.validate.Range(min=0, max=100_000))


class AccountUpdateSchema(StrictSchema):
    api_key = ma.fields.String(validate=ma.validate.Length(min=8, max=200))


class GenerateSchema(StrictSchema):
    count = JsonInteger(required=True, validate=ma.validate.Range(min=1, max=100_000))


def current_store():
    """The simulator's state (an `accounts.AccountBook`), kept in its app's config."""
    return current_app.config["SIM_STORE"]


def account_or_404(account_id: str):
    try:
        return current_store().account(account_id)
    except accounts.NotFound:
        raise NotFound(f"No account {account_id}.") from None


def add_account_routes(admin: Blueprint, *, create_schema: type[AccountCreateSchema],
                       update_schema: type[AccountUpdateSchema], create: Callable[[object, dict], object],
                       update: Callable[[object, dict], None], secrets: Callable[[object], dict]) -> None:
    """`create(store, body)` makes an account (`accounts.Conflict` when its id or key is taken);
    `update(account, body)` applies what the update schema adds to the API key, under the store's lock;
    `secrets(account)` is what only its creation answers."""

    @admin.route("/accounts")
    class Accounts(MethodView):
        def get(self):
            with current_store().lock:
                return jsonify(accounts=[account.summary() for account in current_store().accounts.values()])

        @admin.arguments(create_schema)
        def post(self, body):
            try:
                account = create(current_store(), body)
            except accounts.Conflict as exc:
                raise Conflict(str(exc)) from None
            if body["invoices"]:
                current_store().generate(account.id, body["invoices"])
            with current_store().lock:
                return jsonify({**account.summary(), **secrets(account)}), 201

    @admin.route("/accounts/<account_id>")
    class OneAccount(MethodView):
        def get(self, account_id):
            account = account_or_404(account_id)
            with current_store().lock:
                return jsonify(account.summary())

        @admin.arguments(update_schema)
        def patch(self, body, account_id):
            account = account_or_404(account_id)
            with current_store().lock:
                if "api_key" in body:
                    if any(other.api_key == body["api_key"] for other in current_store().accounts.values()
                           if other is not account):
                        raise Conflict("Another account has this API key.")
                    account.api_key = body["api_key"]
                update(account, body)
                return jsonify(account.summary())

    @admin.route("/accounts/<account_id>/invoices/generate")
    class GenerateInvoices(MethodView):
        @admin.arguments(GenerateSchema)
        def post(self, body, account_id):
            account_or_404(account_id)
            return jsonify(created=current_store().generate(account_id, body["count"])), 201
