"""The provider HTTP client every adapter shares: pooled session, time-outs, bounded answers, one retry policy.

Transport failures (time-outs, refused or reset connections, truncated or
oversized bodies) are transient; the adapter's `interpret` says what else is
(`Transient`, e.g. 5xx, malformed JSON, or 429 with the wait it asks for) and
what is final (a `ProviderError`). Retries follow the platform's backoff
(tenacity, `bobdesk_shared.retry`) and never come sooner than a Retry-After; a
wait longer than the policy allows ends the call with `Throttled`, so the
connection's next poll is scheduled after it instead of holding a worker thread.

An adapter whose provider publishes a rate limit plugs a `Pacing`: it reads the
limit headers of every answer and says how long to hold the next call made with
the same key, so a steady sync stays under the limit instead of meeting 429s.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Protocol, TypeVar

import requests
from bobdesk_shared.retry import full_jitter
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from ..metrics import PROVIDER_ERRORS
from .base import CallContext, ProviderError, ProviderUnavailable, Throttled

T = TypeVar("T")


class Transient(Exception):
    """A failed attempt worth retrying; `wait` is the provider's Retry-After, if any."""

    def __init__(self, kind: str, message: str, wait: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.wait = wait


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_retry_after: float = 30.0


class Pacing(Protocol):
    def delay(self, api_key: str) -> float:
        """Seconds to hold the next call made with `api_key` (0: go)."""

    def observe(self, api_key: str, status: int, headers: Mapping[str, str]) -> None:
        """Read the rate-limit headers of an answer to a call made with `api_key`."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header (seconds or an HTTP date) as seconds from now; None when absent or unreadable."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return Retry().parse_retry_after(value)
    except InvalidHeader:
        return None


def json_answer(body: bytes) -> object:
    """A provider's JSON answer; anything else is a malformed answer, transient like a 5xx.

    Every number with a fraction (and NaN or Infinity) is a `Decimal`: amounts never pass through
    a float, and a NaN stays in its document, which the mapping then refuses alone. Nesting past
    the parser's recursion limit is malformed too."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Transient("malformed", "the answer is not JSON") from None


Interpret = Callable[[int, bytes, Mapping[str, str]], T]


class ProviderHttp:
    def __init__(self, provider: str, *, timeout: tuple[float, float], policy: RetryPolicy,
                 pool_size: int = 16, max_body_bytes: int = 16 << 20, pacing: Pacing | None = None):
        self.provider = provider
        self.timeout = timeout
        self.policy = policy
        self.pacing = pacing
        self.max_body_bytes = max_body_bytes
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def get(self, call: CallContext, url: str, *, params: dict | None, headers: Callable[[str], dict],
            interpret: Interpret[T]) -> T:
        """GET `url` until `interpret` returns, retrying transient failures per the policy."""
        backoff = full_jitter(self.policy.backoff_base, self.policy.backoff_cap)

        def wait(state: RetryCallState) -> float:
            asked = state.outcome.exception().wait
            return max(backoff(state), asked) if asked is not None else backoff(state)

        def waits_too_long(state: RetryCallState) -> bool:
            asked = state.outcome.exception().wait
            return asked is not None and asked > self.policy.max_retry_after

        retrying = Retrying(
            retry=retry_if_exception_type(Transient), wait=wait,
            stop=stop_after_attempt(self.policy.max_attempts) | waits_too_long,
            sleep=call.wait, retry_error_callback=self._give_up,
        )
        return retrying(self._attempt, call, url, params, headers, interpret)

    def _attempt(self, call: CallContext, url: str, params: dict | None, headers: Callable[[str], dict],
                 interpret: Interpret[T]) -> T:
        api_key = call.before_call()
        if self.pacing is not None and (hold := self.pacing.delay(api_key)) > 0:
            call.wait(hold)
        try:
            status, body, response_headers = self._send(url, params, headers(api_key))
            if self.pacing is not None:
                self.pacing.observe(api_key, status, response_headers)
            return interpret(status, body, response_headers)
        except Transient as exc:
            PROVIDER_ERRORS.labels(self.provider, exc.kind).inc()
            raise
        except ProviderError as exc:
            PROVIDER_ERRORS.labels(self.provider, exc.metric).inc()
            raise

    def _give_up(self, state: RetryCallState):
        last = state.outcome.exception()
        if last.kind == "throttled":
            raise Throttled(f"{self.provider} kept throttling: {last.message}",
                            retry_after_seconds=math.ceil(last.wait or 0) or None)
        raise ProviderUnavailable(f"{self.provider} failed {state.attempt_number} times; last: {last.message}")

    def _send(self, url: str, params: dict | None, headers: dict) -> tuple[int, bytes, Mapping[str, str]]:
        try:
            with self._session.get(url, params=params, headers=headers, timeout=self.timeout,
                                   stream=True, allow_redirects=False) as response:
                body = self._read(response)
                return response.status_code, body, response.headers
        except requests.Timeout:
            raise Transient("timeout", "the provider did not answer in time") from None
        except requests.RequestException as exc:
            raise Transient("connection", f"transport error ({type(exc).__name__})") from None

    def _read(self, response: requests.Response) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(64 << 10):
            size += len(chunk)
            if size > self.max_body_bytes:
                raise Transient("malformed", f"answer larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._session.close()
