"""The port to connections-service's `authorize-ingest` (docs/internal-api.md).

Ingestion never trusts the worker for a batch's company and provider: it asks the owner of
the connections. Tests substitute any object with the same `authorize` method.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from bobdesk_shared.errors import Conflict, NotFound, ServiceUnavailable
from bobdesk_shared.service_client import ServiceCallError, ServiceClient
from bobdesk_shared.timeutil import parse_object_id


@dataclasses.dataclass(frozen=True)
class IngestGrant:
    """The authoritative connection, company and provider of a batch."""

    connection: object
    client: object
    provider: str


class IngestAuthorizer(Protocol):
    def authorize(self, connection_id: str, fence: int | None) -> IngestGrant:
        """The grant; NotFound / Conflict (lease_lost, connection_inactive) otherwise."""


class HttpIngestAuthorizer:
    def __init__(self, client: ServiceClient):
        self._client = client

    def authorize(self, connection_id: str, fence: int | None) -> IngestGrant:
        try:
            response = self._client.request(
                "POST", f"/internal/connections/{connection_id}/authorize-ingest", json={"fence": fence})
        except ServiceCallError:
            raise ServiceUnavailable("connections-service is unreachable; retry later.",
                                     code="connections_unavailable") from None
        if response.status_code == 200:
            try:
                body = response.json()
                grant = IngestGrant(parse_object_id(body["id"]), parse_object_id(body["client"]),
                                    body["provider"])
            except (ValueError, KeyError, TypeError):
                grant = None
            if grant is None or grant.connection is None or grant.client is None \
                    or not isinstance(grant.provider, str):
                raise ServiceUnavailable("connections-service answered an unexpected grant.",
                                         code="connections_unavailable")
            return grant
        code, message = _remote_error(response)
        if response.status_code == 404:
            raise NotFound(message or "Unknown connection.", code="not_found")
        if response.status_code == 409:
            raise Conflict(message or "The connection refuses this batch.", code=code or "conflict")
        raise ServiceUnavailable(f"connections-service answered HTTP {response.status_code}.",
                                 code="connections_unavailable")


def _remote_error(response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error.get("code") or ""), str(error.get("message") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", ""
