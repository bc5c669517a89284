"""Use cases: what a company does with its connections, and what the ingest workers do with them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from bobdesk_shared.crypto import DecryptionError, KeyRing, associated_data
from bobdesk_shared.errors import BadRequest, Conflict, NotFound
from bobdesk_shared.providers import PROVIDERS
from bobdesk_shared.timeutil import iso_ms, parse_object_id, utcnow
from bson import ObjectId
from prometheus_client import Counter

from . import domain
from .repository import ActiveConnectionExists, ConnectionRepository

log = logging.getLogger(__name__)

CLAIMS = Counter("connection_claims_total", "Claims by workers", ["result"])
POLL_RESULTS = Counter("connection_poll_results_total", "Poll results reported by workers",
                       ["provider", "outcome", "kind"])
REFUSALS = Counter("connection_worker_refusals_total", "Worker calls refused", ["call", "code"])
CHANGES = Counter("connection_changes_total", "Connection changes by companies", ["action"])

SECRET_KIND = "invoice-connection"  # noqa: S105 (a label of the associated data, not a secret)


@dataclasses.dataclass(frozen=True)
class SecretBox:
    """Seals each secret to its connection and field, so a ciphertext moved elsewhere fails to open."""

    keys: KeyRing

    def seal(self, connection_id: ObjectId, field: str, value: str) -> dict:
        return self.keys.encrypt(value, associated_data(SECRET_KIND, connection_id, field))

    def open(self, doc: dict, field: str) -> str | None:
        sealed = (doc.get("secrets") or {}).get(field)
        if sealed is None:
            return None
        return self.keys.decrypt(sealed, associated_data(SECRET_KIND, doc["_id"], field))


def _lease_lost():
    return Conflict("Another worker holds this connection now, or the lease was revoked.", code="lease_lost")


def _inactive():
    return Conflict("The connection was deactivated or deleted.", code="connection_inactive")


def _not_found() -> NotFound:
    # The requested id is not echoed: an answer repeats nothing the caller sent.
    return NotFound("No such connection.")


def _refuse_webhook_secret_unless_supported(provider: str) -> None:
    """A provider that sends no webhooks takes no secret: 400 on create and on update alike (on
    update the stored connection's provider decides)."""
    if not PROVIDERS[provider].supports_webhooks:
        raise BadRequest(f"{PROVIDERS[provider].name} sends no webhooks: a connection to it takes no webhook secret.",
                      code="webhooks_not_supported")


def _id(value: str) -> ObjectId:
    parsed = parse_object_id(value)
    if parsed is None:
        raise _not_found()  # a malformed id names nothing: 404, as for any unknown id
    return parsed


@dataclasses.dataclass(frozen=True)
class Claim:
    """A leased connection, with its decrypted API key and the provider's checkpoint."""

    doc: dict
    api_key: str
    checkpoint: dict | None


@dataclasses.dataclass
class ConnectionService:
    """What an accounting user of a company does (every call is scoped to `client`)."""

    repository: ConnectionRepository
    secrets: SecretBox

    def list(self, client: ObjectId) -> list[dict]:
        return self.repository.list_for(client)

    def get(self, client: ObjectId, connection_id: str) -> dict:
        doc = self.repository.get_for(client, _id(connection_id))
        if doc is None:
            raise _not_found()
        return doc

    def create(self, client: ObjectId, provider: str, api_key: str, webhook_secret: str | None,
               active: bool) -> dict:
        if webhook_secret is not None:
            _refuse_webhook_secret_unless_supported(provider)
        now = utcnow()
        connection_id = ObjectId()
        secrets = {"apiKey": self.secrets.seal(connection_id, "apiKey", api_key)}
        if webhook_secret is not None:
            secrets["webhookSecret"] = self.secrets.seal(connection_id, "webhookSecret", webhook_secret)
        doc = domain.new_connection(connection_id, client, provider, secrets, active, now)
        try:
            self.repository.insert(doc)
        except ActiveConnectionExists:
            raise self._active_exists(provider) from None
        CHANGES.labels("create").inc()
        log.info("connection created", extra={"connection": str(connection_id), "client": str(client),
                                              "provider": provider, "active": active})
        return doc

    def update(self, client: ObjectId, connection_id: str, changes: dict) -> dict:
        current = self.get(client, connection_id)
        if "webhookSecret" in changes:
            _refuse_webhook_secret_unless_supported(current["provider"])
        fields, revoke_lease = domain.connection_changes(current, changes, utcnow())
        sealed = {field: self.secrets.seal(current["_id"], field, changes[field])
                  for field in ("apiKey", "webhookSecret") if field in changes}
        try:
            doc = self.repository.update_for(client, current["_id"], fields, secrets=sealed,
                                             revoke_lease=revoke_lease)
        except ActiveConnectionExists:
            raise self._active_exists(current["provider"]) from None
        if doc is None:  # deleted meanwhile
            raise _not_found()
        CHANGES.labels("update").inc()
        log.info("connection updated", extra={"connection": connection_id, "client": str(client),
                                              "fields": sorted(changes)})
        return doc

    def delete(self, client: ObjectId, connection_id: str) -> None:
        """Soft delete: the secrets are erased, the lease revoked; the record stays for the audit."""
        if self.repository.soft_delete(client, _id(connection_id), utcnow()) is None:
            raise _not_found()
        CHANGES.labels("delete").inc()
        log.info("connection deleted", extra={"connection": connection_id, "client": str(client)})

    def poll_now(self, client: ObjectId, connection_id: str, full: bool = False) -> dict:
        """Make the connection due at once; `full`: its next poll lists everything from no checkpoint
        and cancels what the provider no longer has."""
        current = self.get(client, connection_id)
        if not current["active"]:
            raise Conflict("The connection is inactive; activate it to poll.", code="connection_inactive")
        now = utcnow()
        fields = {"next_poll_at": now, "poll_requested_at": now}
        if full:
            fields["resync"] = domain.new_resync(now)
        doc = self.repository.update_for(client, current["_id"], fields)
        if doc is None:
            raise _not_found()
        return doc

    @staticmethod
    def _active_exists(provider: str) -> Conflict:
        return Conflict(f"An active {provider} connection already exists for this company.",
                        code="active_connection_exists")


@dataclasses.dataclass
class WorkerService:
    """What the ingest workers do: lease a due connection, keep it, report how the poll went.

    Every call that acts for a lease carries its fence; the check and the write are one atomic
    update, so a worker that lost its lease, or whose connection was deactivated or deleted
    (both revoke the lease), can neither renew it nor store anything for it afterwards."""

    repository: ConnectionRepository
    secrets: SecretBox
    poll_interval_seconds: int

    def claim(self, worker: str, lease_seconds: int) -> Claim | None:
        now = utcnow()
        while True:
            lease = {"owner": worker, "claimed_at": now, "expires_at": now + dt.timedelta(seconds=lease_seconds)}
            doc = self.repository.claim_due(now, lease)
            if doc is None:
                CLAIMS.labels("none").inc()
                return None
            try:
                api_key = self.secrets.open(doc, "apiKey")
            except DecryptionError as exc:
                # A key missing from CREDENTIALS_KEYS: say so on the sync status, try the next one.
                self._fail_unreadable(doc, exc)
                continue
            if domain.resync_pending(doc):
                doc = self.repository.start_resync(doc["_id"], doc["fence"], now) or doc
                log.info("full resync started", extra={"connection": str(doc["_id"])})
            CLAIMS.labels("claimed").inc()
            log.info("connection claimed", extra={"connection": str(doc["_id"]), "worker": worker,
                                                  "fence": doc["fence"]})
            return Claim(doc, api_key, self.repository.checkpoint_of(doc))

    def heartbeat(self, connection_id: str, fence: int, lease_seconds: int, checkpoint: dict | None) -> dict:
        expires_at = utcnow() + dt.timedelta(seconds=lease_seconds)
        doc = self._leased("heartbeat", connection_id, fence,
                           lambda oid: self.repository.renew_lease(oid, fence, expires_at, checkpoint))
        return {"lease_expires_at": iso_ms(doc["lease"]["expires_at"]), "api_key": self._api_key(doc)}

    def report(self, connection_id: str, fence: int, result: dict) -> dict:
        """Record a poll's outcome, schedule the next one and release the lease."""
        oid = _id(connection_id)
        current = self._check_lease("poll-result", oid, fence)
        now = utcnow()
        outcome = domain.poll_outcome(current, result, now, self.poll_interval_seconds)
        doc = self._leased("poll-result", connection_id, fence,
                           lambda oid: self.repository.record_poll(oid, fence, outcome))
        kind = result["error"]["kind"] if result["outcome"] == "failure" else ""
        POLL_RESULTS.labels(doc["provider"], result["outcome"], kind).inc()
        log.info("poll reported", extra={"connection": connection_id, "outcome": result["outcome"], "kind": kind,
                                         "stats": result.get("stats"), "next_poll_at": iso_ms(doc["next_poll_at"])})
        return {"next_poll_at": iso_ms(doc["next_poll_at"])}

    def release(self, connection_id: str, fence: int) -> None:
        self._leased("release", connection_id, fence, lambda oid: self.repository.release_lease(oid, fence))

    def authorize_ingest(self, connection_id: str, fence: int | None) -> dict:
        """Whether a batch for this connection may be stored now (with the lease's fence, or a webhook's)."""
        oid = _id(connection_id)
        doc = self.repository.get(oid)
        if doc is None or doc["deleted"]:
            raise _not_found()
        if not doc["active"]:
            raise self._refuse("authorize-ingest", _inactive())
        if fence is not None and not domain.lease_holds(doc, fence, utcnow()):
            raise self._refuse("authorize-ingest", _lease_lost())
        return {"id": connection_id, "client": str(doc["client"]), "provider": doc["provider"]}

    def webhook_credentials(self, connection_id: str) -> dict:
        doc = self.repository.get(_id(connection_id))
        if doc is None or doc["deleted"]:
            raise _not_found()
        if not doc["active"]:
            raise self._refuse("webhook-credentials", _inactive())
        try:
            webhook_secret = self.secrets.open(doc, "webhookSecret")
            api_key = self.secrets.open(doc, "apiKey")
        except DecryptionError as exc:
            log.error("stored secret cannot be decrypted", extra={"connection": connection_id, "error": str(exc)})
            raise self._refuse("webhook-credentials", Conflict(
                "The stored secrets cannot be decrypted with CREDENTIALS_KEYS.", code="undecryptable_secret")) from None
        if webhook_secret is None:
            raise self._refuse("webhook-credentials", Conflict("No webhook secret is stored for this connection.",
                                                               code="no_webhook_secret"))
        return {"id": connection_id, "client": str(doc["client"]), "provider": doc["provider"],
                "webhook_secret": webhook_secret, "api_key": api_key}

    def webhook_result(self, connection_id: str, counts: dict) -> None:
        if self.repository.count_webhook(_id(connection_id), domain.ingested(counts), utcnow()) is None:
            raise _not_found()

    # --- helpers -----------------------------------------------------------------------------

    def _api_key(self, doc: dict) -> str | None:
        try:
            return self.secrets.open(doc, "apiKey")
        except DecryptionError:
            raise self._refuse("heartbeat", Conflict(
                "The stored API key cannot be decrypted with CREDENTIALS_KEYS.", code="undecryptable_secret")) from None

    def _leased(self, call: str, connection_id: str, fence: int, write: Callable[[ObjectId], dict | None]) -> dict:
        """`write`'s document, done while the lease under `fence` holds; the refusal that says why otherwise."""
        oid = _id(connection_id)
        doc = write(oid)
        if doc is None:
            self._check_lease(call, oid, fence)
            raise self._refuse(call, _lease_lost())  # the lease changed between the check and the write
        return doc

    def _check_lease(self, call: str, oid: ObjectId, fence: int) -> dict:
        """The document when `fence` still holds its lease, else the refusal that says why."""
        doc = self.repository.get(oid)
        if doc is None:
            raise _not_found()
        if doc["deleted"] or not doc["active"]:
            raise self._refuse(call, _inactive())
        if doc.get("fence") != fence or doc.get("lease") is None:
            raise self._refuse(call, _lease_lost())
        return doc

    @staticmethod
    def _refuse(call: str, error: Conflict) -> Conflict:
        REFUSALS.labels(call, error.code).inc()
        return error

    def _fail_unreadable(self, doc: dict, exc: DecryptionError) -> None:
        now = utcnow()
        result = {"outcome": "failure", "retry_after_seconds": None,
                  "error": {"kind": "internal", "message": f"the stored API key cannot be decrypted ({exc}); "
                                                           "set the key again or restore CREDENTIALS_KEYS"}}
        self.repository.record_poll(doc["_id"], doc["fence"],
                                    domain.poll_outcome(doc, result, now, self.poll_interval_seconds))
        log.error("stored API key cannot be decrypted", extra={"connection": str(doc["_id"]), "error": str(exc)})
