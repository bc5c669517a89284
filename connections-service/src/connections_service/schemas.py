"""Request and response schemas: the connection resource, the sync status, the internal API."""

from __future__ import annotations

import marshmallow as ma
from bobdesk_shared.providers import PROVIDERS
from bobdesk_shared.schemas import JsonBoolean, JsonInteger, StrictSchema, WholeMatch
from marshmallow import validate

MAX_SECRET_LENGTH = 4096
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 10, 600

IMMUTABLE_FIELDS = frozenset({"provider", "client"})

_length = validate.Length(min=1, max=MAX_SECRET_LENGTH)
# The API key travels in an HTTP header (CR, LF or NUL there breaks every call, and a header is
# Latin-1 at best): printable ASCII. The webhook secret only keys an HMAC: any text without
# control characters (C0, DEL, C1).
_api_key = dict(validate=[_length, WholeMatch(
    r"[\x20-\x7e]*", error="Only printable ASCII characters (no control characters).")])
_webhook_secret = dict(validate=[_length, WholeMatch(
    r"[^\x00-\x1f\x7f-\x9f]*", error="No control characters (CR, LF, NUL, ...).")])
_provider_keys = sorted(PROVIDERS)

CONNECTION_EXAMPLE = {
    "id": "64b2e4d19ab7e72a4fb4ac20",
    "client": "5d9b5b5b9ab7e72a4fb4ae69",
    "provider": "yooz",
    "active": True,
    "hasCredentials": True,
    "hasWebhookSecret": True,
    "lastPolledAt": "2024-06-20T06:00:00.000Z",
    "createdAt": "2024-01-15T10:30:00.000Z",
    "updatedAt": "2024-06-20T06:00:00.000Z",
}
CREATE_EXAMPLE = {"provider": "yooz", "apiKey": "yz_live_sk_••••••••••••••••",
                  "webhookSecret": "whsec_••••••••••••••••", "active": True}
CREATED_EXAMPLE = {**CONNECTION_EXAMPLE, "lastPolledAt": None, "createdAt": "2024-06-22T09:00:00.000Z",
                   "updatedAt": "2024-06-22T09:00:00.000Z"}
UPDATE_EXAMPLE = {"apiKey": "yz_live_sk_new••••••••••••"}
UPDATED_EXAMPLE = {**CONNECTION_EXAMPLE, "createdAt": "2024-01-15T10:30:00.000Z",
                   "updatedAt": "2024-06-22T11:45:00.000Z"}


# --- the connection resource -----------------------------------------------------------------

class ConnectionSchema(ma.Schema):
    """The connection as every endpoint answers it: exactly nine properties, secrets never among them."""

    id = ma.fields.String(required=True, metadata={"description": "Unique identifier for the connection."})
    client = ma.fields.String(required=True, metadata={"description": "Company (tenant) id that owns it."})
    provider = ma.fields.String(required=True, metadata={"description": 'Provider key, e.g. "yooz".'})
    active = ma.fields.Boolean(required=True, metadata={
        "description": "Whether the connection is active; one active connection per provider per company."})
    hasCredentials = ma.fields.Boolean(required=True, metadata={
        "description": "True when an API key is stored. The key itself is never returned."})
    hasWebhookSecret = ma.fields.Boolean(required=True, metadata={
        "description": "True when a webhook secret is stored. The secret itself is never returned."})
    lastPolledAt = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "ISO date of the last successful poll; null if never polled successfully."})
    createdAt = ma.fields.String(required=True, metadata={"description": "ISO date of creation."})
    updatedAt = ma.fields.String(required=True, metadata={"description": "ISO date of the last modification."})


def _webhook_secret_only_where_supported() -> dict:
    """The document's form of `webhooks_not_supported`: a provider that sends no webhooks takes no secret."""
    polled_only = sorted(key for key, provider in PROVIDERS.items() if not provider.supports_webhooks)
    with_webhooks = sorted(set(PROVIDERS) - set(polled_only))
    return {"anyOf": [{"properties": {"provider": {"enum": with_webhooks}}},
                      {"properties": {"provider": {"enum": polled_only}}, "not": {"required": ["webhookSecret"]}}]}


class ConnectionCreateSchema(StrictSchema):
    class Meta(StrictSchema.Meta):
        json_schema = _webhook_secret_only_where_supported()

    provider = ma.fields.String(required=True, validate=validate.OneOf(
        _provider_keys, error="Unknown provider key; known providers: " + ", ".join(_provider_keys) + "."),
        metadata={"description": 'Provider key, e.g. "yooz". 400 if unknown.', "enum": _provider_keys})
    apiKey = ma.fields.String(required=True, **_api_key, metadata={
        "description": "API credentials for the provider. Write-only: stored encrypted, never returned."})
    webhookSecret = ma.fields.String(**_webhook_secret, metadata={
        "description": "HMAC secret verifying inbound webhooks. Write-only: stored encrypted, never returned. "
                       "400 `webhooks_not_supported` for a provider that sends no webhooks."})
    active = JsonBoolean(load_default=True, metadata={
        "description": "Activate at once (default true). 409 if an active connection of the provider exists."})


class ConnectionUpdateSchema(StrictSchema):
    class Meta(StrictSchema.Meta):
        json_schema = {"minProperties": 1}  # at least one field (`at_least_one`)

    apiKey = ma.fields.String(**_api_key, metadata={
        "description": "Replacement API key; overwrites the stored one, never returned. Polled at once."})
    webhookSecret = ma.fields.String(**_webhook_secret, metadata={
        "description": "Replacement webhook secret; overwrites the stored one, never returned. "
                       "400 `webhooks_not_supported` when the connection's provider sends no webhooks."})
    active = JsonBoolean(metadata={
        "description": "Enable or disable. 409 if enabling makes two active connections of the provider."})

    @ma.pre_load
    def immutable_fields(self, data, **kwargs):
        """`provider` and `client` are not in the document (a PATCH cannot carry them); named in the
        400, so it says why instead of "Unknown field"."""
        named = sorted(IMMUTABLE_FIELDS & set(data)) if isinstance(data, dict) else []
        if named:
            raise ma.ValidationError({name: [f"{name} cannot be changed; create a new connection instead."]
                                      for name in named})
        return data

    @ma.validates_schema
    def at_least_one(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("Provide at least one of apiKey, webhookSecret, active.", "_schema")


# --- sync status ------------------------------------------------------------------------------

class SyncErrorSchema(ma.Schema):
    kind = ma.fields.String(metadata={"enum": ["bad_credentials", "throttled", "provider_error", "invalid_data",
                                               "internal"]})
    message = ma.fields.String()
    at = ma.fields.String()


class SyncRunSchema(ma.Schema):
    outcome = ma.fields.String(metadata={"enum": ["success", "failure"]})
    at = ma.fields.String()
    durationMs = ma.fields.Integer(allow_none=True)
    pages = ma.fields.Integer()
    created = ma.fields.Integer()
    updated = ma.fields.Integer()
    unchanged = ma.fields.Integer()
    rejected = ma.fields.Integer(metadata={"description": "Invoices the provider sent that failed validation."})
    cancelled = ma.fields.Integer(metadata={"description": "Invoices cancelled: deleted at the provider, or "
                                                          "missing from a full listing."})


class ResyncSchema(ma.Schema):
    state = ma.fields.String(metadata={"enum": ["requested", "running", "done"]})
    requestedAt = ma.fields.String()
    startedAt = ma.fields.String(allow_none=True)
    finishedAt = ma.fields.String(allow_none=True)
    pages = ma.fields.Integer()
    created = ma.fields.Integer()
    updated = ma.fields.Integer()
    unchanged = ma.fields.Integer()
    cancelled = ma.fields.Integer()
    rejected = ma.fields.Integer()


class SyncRequestSchema(StrictSchema):
    """Optional; a POST authenticated by the session cookie alone must be application/json (`{}`
    to poll now), so no cross-site form can trigger it."""

    full = JsonBoolean(load_default=False, metadata={
        "description": "true: a full resync. The next poll starts from no checkpoint, lists everything the "
                       "provider holds, and cancels the invoices it no longer has."})


class SyncStatusSchema(ma.Schema):
    connectionId = ma.fields.String()
    active = ma.fields.Boolean()
    polling = ma.fields.Boolean(metadata={"description": "A worker is polling the connection right now."})
    lastPolledAt = ma.fields.String(allow_none=True)
    lastSuccessAt = ma.fields.String(allow_none=True)
    lastError = ma.fields.Nested(SyncErrorSchema, allow_none=True,
                                 metadata={"description": "The last failure, kept after a later success."})
    consecutiveFailures = ma.fields.Integer()
    nextPollAt = ma.fields.String(allow_none=True, metadata={"description": "null while inactive."})
    invoicesIngested = ma.fields.Integer(metadata={"description": "Invoices created or updated, all time."})
    lastRun = ma.fields.Nested(SyncRunSchema, allow_none=True)
    lastWebhookAt = ma.fields.String(allow_none=True)
    webhookEvents = ma.fields.Integer()
    resync = ma.fields.Nested(ResyncSchema, allow_none=True,
                              metadata={"description": "The full resync asked or in progress, with its counts so far."})
    lastResync = ma.fields.Nested(ResyncSchema, allow_none=True, metadata={"description": "The last one finished."})


# --- internal API (docs/internal-api.md) ------------------------------------------------------

_fence = dict(required=True, validate=validate.Range(min=0))
_lease_seconds = dict(required=True, validate=validate.Range(min=MIN_LEASE_SECONDS, max=MAX_LEASE_SECONDS))
_count = dict(load_default=0, validate=validate.Range(min=0))


class ClaimSchema(StrictSchema):
    worker = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    lease_seconds = JsonInteger(**_lease_seconds)


class ClaimedConnectionSchema(ma.Schema):
    id = ma.fields.String()
    client = ma.fields.String()
    provider = ma.fields.String()
    api_key = ma.fields.String()
    checkpoint = ma.fields.Dict(allow_none=True)
    fence = ma.fields.Integer()
    lease_expires_at = ma.fields.String()


class ClaimResponseSchema(ma.Schema):
    connection = ma.fields.Nested(ClaimedConnectionSchema)


class HeartbeatSchema(StrictSchema):
    fence = JsonInteger(**_fence)
    lease_seconds = JsonInteger(**_lease_seconds)
    checkpoint = ma.fields.Dict()


class HeartbeatResponseSchema(ma.Schema):
    lease_expires_at = ma.fields.String()
    api_key = ma.fields.String(metadata={"description": "The current key: a rotated key is used at once."})


class StatsSchema(StrictSchema):
    pages = JsonInteger(**_count)
    created = JsonInteger(**_count)
    updated = JsonInteger(**_count)
    unchanged = JsonInteger(**_count)
    cancelled = JsonInteger(**_count)
    rejected = JsonInteger(**_count)


class PollErrorSchema(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(
        ["bad_credentials", "throttled", "provider_error", "invalid_data", "internal"]))
    message = ma.fields.String(required=True, validate=validate.Length(max=1000))


class PollResultSchema(StrictSchema):
    fence = JsonInteger(**_fence)
    outcome = ma.fields.String(required=True, validate=validate.OneOf(["success", "failure"]))
    checkpoint = ma.fields.Dict(allow_none=True)
    stats = ma.fields.Nested(StatsSchema, load_default=dict)
    duration_ms = JsonInteger(allow_none=True, load_default=None, validate=validate.Range(min=0))
    error = ma.fields.Nested(PollErrorSchema)
    retry_after_seconds = JsonInteger(allow_none=True, load_default=None, validate=validate.Range(min=0, max=86400))

    @ma.validates_schema
    def outcome_fields(self, data, **kwargs):
        if data.get("outcome") == "failure" and "error" not in data:
            raise ma.ValidationError("A failure needs its error.", "error")
        if data.get("outcome") == "success" and "error" in data:
            raise ma.ValidationError("A success has no error.", "error")


class PollResultResponseSchema(ma.Schema):
    next_poll_at = ma.fields.String()


class ReleaseSchema(StrictSchema):
    fence = JsonInteger(**_fence)


class AuthorizeIngestSchema(StrictSchema):
    fence = JsonInteger(allow_none=True, load_default=None, validate=validate.Range(min=0),
                        metadata={"description": "The lease's fence; null for a webhook delivery."})


class AuthorizedSchema(ma.Schema):
    id = ma.fields.String()
    client = ma.fields.String()
    provider = ma.fields.String()


class WebhookCredentialsSchema(AuthorizedSchema):
    webhook_secret = ma.fields.String()
    api_key = ma.fields.String()


class WebhookResultSchema(StrictSchema):
    created = JsonInteger(**_count)
    updated = JsonInteger(**_count)
    unchanged = JsonInteger(**_count)
    rejected = JsonInteger(**_count)
