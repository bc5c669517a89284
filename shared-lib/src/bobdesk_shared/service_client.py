"""Calls between our own components, authenticated with a short-lived service token.

A pooled `requests.Session` with connect/read timeouts. A caller whose calls are
all safe to repeat asks for `attempts` > 1: transport errors and 5xx answers are
then retried on the pooled adapter (urllib3's `Retry`, the platform's backoff,
Retry-After honoured). What still fails is raised as `ServiceCallError`.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from .auth import ServiceTokenSource
from .logs import redact_text
from .retry import JitteredRetry

RETRIED_STATUSES = (500, 502, 503, 504)


class ServiceCallError(Exception):
    """The other service could not be reached or failed (5xx)."""


class ServiceClient:
    def __init__(self, base_url: str, token_source: ServiceTokenSource, *,
                 timeout: tuple[float, float] = (3.0, 30.0), pool_size: int = 16, attempts: int = 1,
                 backoff_base: float = 0.2, backoff_cap: float = 2.0):
        self.base_url = base_url.rstrip("/")
        self._token = token_source
        self._timeout = timeout
        self._session = requests.Session()
        # Every method is retried: only callers whose calls are idempotent ask for attempts.
        retry = JitteredRetry(total=attempts - 1, status_forcelist=RETRIED_STATUSES, allowed_methods=None,
                              backoff_factor=backoff_base, backoff_max=backoff_cap, raise_on_status=False,
                              respect_retry_after_header=True)
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def request(self, method: str, path: str, *, json=None, data: bytes | None = None,
                params=None) -> requests.Response:
        """The response for any status below 500; `ServiceCallError` otherwise. The body is `json`, a
        value to encode, or `data`, JSON already encoded."""
        headers = {"Authorization": f"Bearer {self._token()}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, data=data, params=params, timeout=self._timeout,
                headers=headers,
            )
        except requests.RequestException as exc:
            raise ServiceCallError(f"{method} {path}: {redact_text(str(exc))}") from None
        if response.status_code >= 500:
            raise ServiceCallError(f"{method} {path}: HTTP {response.status_code}")
        return response

    def close(self) -> None:
        self._session.close()
