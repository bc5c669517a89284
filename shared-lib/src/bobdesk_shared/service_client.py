"""Calls between our own components, authenticated with a short-lived service token.

A pooled `requests.Session` with connect/read timeouts; transport errors and 5xx
answers are raised as `ServiceCallError` so callers decide what is retryable.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from .auth import ServiceTokenSource
from .logs import redact_text


class ServiceCallError(Exception):
    """The other service could not be reached or failed (5xx)."""


class ServiceClient:
    def __init__(self, base_url: str, token_source: ServiceTokenSource, *,
                 timeout: tuple[float, float] = (3.0, 30.0), pool_size: int = 16):
        self.base_url = base_url.rstrip("/")
        self._token = token_source
        self._timeout = timeout
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def request(self, method: str, path: str, *, json=None, params=None) -> requests.Response:
        """The response for any status below 500; `ServiceCallError` otherwise."""
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, params=params, timeout=self._timeout,
                headers={"Authorization": f"Bearer {self._token()}"},
            )
        except requests.RequestException as exc:
            raise ServiceCallError(f"{method} {path}: {redact_text(str(exc))}") from None
        if response.status_code >= 500:
            raise ServiceCallError(f"{method} {path}: HTTP {response.status_code}")
        return response

    def close(self) -> None:
        self._session.close()
