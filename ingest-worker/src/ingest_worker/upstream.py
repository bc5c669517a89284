"""The internal APIs the worker calls (docs/internal-api.md), as typed methods.

Transport failures and 5xx are retried a few times by the service client (every
call here is safe to repeat: leases are fenced, ingestion is idempotent) and then
raised as `UpstreamError`. A 404/409 about the connection's state is `Refused`,
which the poller obeys by stopping at once; any other answer is `UpstreamError` too.
"""

from __future__ import annotations

import json
import logging

import requests
from bobdesk_shared.auth import INGEST_WORKER, ServiceTokenSource
from bobdesk_shared.service_client import ServiceCallError, ServiceClient

log = logging.getLogger(__name__)

SERVICE_NAME = INGEST_WORKER  # the `sub` of its service tokens
MAX_BATCH_INVOICES = 500
MAX_BATCH_BYTES = 4 << 20  # under invoices-service's 5 MiB, leaving room for the envelope


class UpstreamError(Exception):
    """A service was unreachable, failed, or answered something unexpected (`status` when it answered)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Refused(Exception):
    """404/409 about the connection: `code` is not_found, lease_lost, connection_inactive or no_webhook_secret
    (conflict for a 409 that names no code)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class InvalidBatch(UpstreamError):
    """invoices-service refused a batch as not canonical: a bug on our side, never a data problem."""


def _error(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", response.text[:200]


class _Api:
    def __init__(self, base_url: str, tokens: ServiceTokenSource, *, attempts: int = 4, timeout=(3.0, 30.0),
                 pool_size: int = 16):
        self.client = ServiceClient(base_url, tokens, timeout=timeout, pool_size=pool_size, attempts=attempts)

    def call(self, method: str, path: str, body: dict | bytes | None = None, *, expect: tuple[int, ...] = (200,),
             refusals: tuple[int, ...] = (404, 409)) -> requests.Response:
        """`body` is JSON: a value to encode, or its encoding already."""
        try:
            response = self.client.request(method, path, **({"data": body} if isinstance(body, bytes) else
                                                             {"json": body}))
        except ServiceCallError as exc:
            log.warning("service call failed", extra={"call": f"{method} {path}", "error": str(exc)})
            raise UpstreamError(str(exc)) from None
        if response.status_code in expect:
            return response
        code, message = _error(response)
        if response.status_code in refusals:
            # An answer without our error body (a proxy's, say) is named by its status alone.
            raise Refused(response.status_code, code or ("not_found" if response.status_code == 404 else "conflict"),
                          message)
        raise UpstreamError(f"{method} {path}: HTTP {response.status_code} {code} {message}".strip(),
                            response.status_code)

    def healthy(self) -> bool:
        try:
            return requests.get(self.client.base_url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        self.client.close()


class ConnectionsApi(_Api):
    def claim(self, worker: str, lease_seconds: int) -> dict | None:
        response = self.call("POST", "/internal/connections/claim", {"worker": worker, "lease_seconds": lease_seconds},
                             expect=(200, 204))
        return None if response.status_code == 204 else response.json()["connection"]

    def heartbeat(self, connection_id: str, fence: int, lease_seconds: int, checkpoint: dict | None = None) -> dict:
        body = {"fence": fence, "lease_seconds": lease_seconds}
        if checkpoint is not None:
            body["checkpoint"] = checkpoint
        return self.call("POST", f"/internal/connections/{connection_id}/heartbeat", body).json()

    def poll_success(self, connection_id: str, fence: int, checkpoint: dict | None, stats: dict,
                     duration_ms: int) -> dict:
        body = {"fence": fence, "outcome": "success", "checkpoint": checkpoint or {}, "stats": stats,
                "duration_ms": duration_ms}
        return self.call("POST", f"/internal/connections/{connection_id}/poll-result", body).json()

    def poll_failure(self, connection_id: str, fence: int, kind: str, message: str, *,
                     retry_after_seconds: int | None, stats: dict, checkpoint: dict | None) -> dict:
        body = {"fence": fence, "outcome": "failure", "error": {"kind": kind, "message": message[:500]},
                "retry_after_seconds": retry_after_seconds, "stats": stats}
        if checkpoint is not None:
            body["checkpoint"] = checkpoint
        return self.call("POST", f"/internal/connections/{connection_id}/poll-result", body).json()

    def release(self, connection_id: str, fence: int) -> None:
        self.call("POST", f"/internal/connections/{connection_id}/release", {"fence": fence}, expect=(200, 204))

    def webhook_credentials(self, connection_id: str) -> dict:
        return self.call("GET", f"/internal/connections/{connection_id}/webhook-credentials").json()

    def webhook_result(self, connection_id: str, counts: dict) -> None:
        body = {name: counts.get(name, 0) for name in ("created", "updated", "unchanged", "rejected")}
        self.call("POST", f"/internal/connections/{connection_id}/webhook-result", body, expect=(200, 204))


class InvoicesApi(_Api):
    def store_batch(self, connection_id: str, fence: int | None, invoices: list[dict],
                    cancellations: list[dict] | None = None, listing: str | None = None, *,
                    texts: list[str] | None = None) -> dict:
        """Store `invoices` (split to fit the batch limits); the summed counts and every result.

        `listing` names the full listing the invoices belong to (they are marked as listed by it).
        `texts` are the invoices' JSON (`invoice_texts`) when the caller encoded them already."""
        texts = invoice_texts(invoices) if texts is None else texts
        total = {"created": 0, "updated": 0, "unchanged": 0, "cancelled": 0, "results": []}
        for part, part_cancellations in _split(texts, cancellations or []):
            envelope = {"connection": connection_id, "fence": fence, "cancellations": part_cancellations,
                        **({"listing": listing} if listing else {})}
            try:
                answer = self.call("POST", "/internal/invoices/batch", body=_batch_body(envelope, part)).json()
            except UpstreamError as exc:
                if exc.status == 400:
                    raise InvalidBatch(str(exc), 400) from None
                raise
            for name in ("created", "updated", "unchanged", "cancelled"):
                total[name] += int(answer.get(name, 0))
            total["results"] += answer.get("results", [])
        return total

    def complete_listing(self, connection_id: str, fence: int, listing: str) -> int:
        """The full listing `listing` is done: how many invoices it did not list were cancelled."""
        body = {"connection": connection_id, "fence": fence, "listing": listing}
        return int(self.call("POST", "/internal/invoices/listing-complete", body).json()["cancelled"])

    def reconcile(self, client: str) -> dict:
        return self.call("POST", "/internal/invoices/reconcile", {"client": client}).json()


def invoice_texts(invoices: list[dict]) -> list[str]:
    """Each invoice's JSON, encoded once: its weight against the batch limits and its part of the body."""
    return [json.dumps(invoice, separators=(",", ":"), allow_nan=False) for invoice in invoices]


def _batch_body(envelope: dict, texts: list[str]) -> bytes:
    """`envelope` with its `invoices` (given as their JSON texts), as the request's JSON body."""
    return b"".join((json.dumps(envelope, separators=(",", ":"), allow_nan=False)[:-1].encode(),
                     b',"invoices":[', ",".join(texts).encode(), b"]}"))


def _split(texts: list[str], cancellations: list[dict]):
    """Batches of at most 500 invoices (as their JSON texts) and ~4 MiB; cancellations ride with the first."""
    part, size = [], 0
    first = True
    for text in texts:
        weight = len(text) + 1
        if part and (len(part) == MAX_BATCH_INVOICES or size + weight > MAX_BATCH_BYTES):
            yield part, cancellations if first else []
            part, size, first = [], 0, False
        part.append(text)
        size += weight
    if part or first:
        yield part, cancellations if first else []


def build_clients(settings, pool_size: int = 16) -> tuple[ConnectionsApi, InvoicesApi]:
    tokens = ServiceTokenSource(settings.service_jwt_secret, SERVICE_NAME)
    return (ConnectionsApi(settings.connections_url, tokens, pool_size=pool_size),
            InvoicesApi(settings.invoices_url, tokens, pool_size=pool_size))
