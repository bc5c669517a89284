"""The one backoff policy of the platform: exponential with full jitter.

After the n-th consecutive failure the next try waits a uniform random time in
`[floor, min(cap, base * 2**(n-1))]` (tenacity's `wait_random_exponential`), and
never less than the wait the other side asked for (Retry-After); a wait longer
than the policy allows ends the retries instead of holding the caller. Calls retried
at once use tenacity or urllib3's `Retry` with this wait; failures retried later
(a poll, a webhook event) store the delay `backoff_delay` gives.
"""

from __future__ import annotations

import itertools

from tenacity import RetryCallState, Retrying, wait_random_exponential
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry


def full_jitter(base: float, cap: float, floor: float = 0.0) -> wait_random_exponential:
    """The wait strategy, for tenacity."""
    return wait_random_exponential(multiplier=base, max=cap, min=floor)


def backoff_delay(failures: int, *, base: float, cap: float, floor: float = 0.0, at_least: float = 0.0) -> float:
    """Seconds to wait after `failures` consecutive failures (at least 1)."""
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = max(1, failures)
    return max(full_jitter(base, cap, floor)(state), at_least)


class JitteredRetry(Retry):
    """urllib3's `Retry` waiting by the platform's policy between tries.

    A Retry-After within `backoff_max` is waited for; a longer one ends the retries at once
    (the last answer stands), so a caller never holds its thread longer than its policy allows.
    """

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        asked = self.get_retry_after(response) if response is not None else None
        if asked is not None and asked > self.backoff_max:
            raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {asked:g} s exceeds {self.backoff_max:g} s"))
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_backoff_time(self) -> float:
        failures = len(list(itertools.takewhile(lambda entry: entry.redirect_location is None,
                                                reversed(self.history))))
        if failures == 0 or self.backoff_factor == 0:
            return 0.0
        return backoff_delay(failures, base=self.backoff_factor, cap=self.backoff_max)
