"""Pacing on a provider's published rate limit, so a steady sync is never throttled.

Providers that publish their limit answer every call with `RateLimit-Remaining`
(calls left in the current window) and `RateLimit-Reset` (when the window ends).
`HeaderPacing` remembers both per API key (the budget is the token's) and holds
the next call with that key until the window resets once nothing remains. It
also counts the calls it let go since the last answer, so calls in flight are
not spent twice. A 429 spends the window too: nothing goes before its
Retry-After. `RateLimit-Reset` is read as Unix seconds, or as seconds from now
when it is too small to be a date (both spellings are in use).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from .http import retry_after_seconds

_DELTA_LIMIT = 10**9  # a reset below this is "seconds from now", not a Unix time
MAX_KEYS = 10_000


class _Window:
    __slots__ = ("remaining", "reset_at")

    def __init__(self):
        self.remaining: int | None = None
        self.reset_at = 0.0


class HeaderPacing:
    def __init__(self, clock: Callable[[], float] = time.time, margin: float = 0.05):
        self.clock = clock
        self.margin = margin  # the server's window may end a little after our clock says
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def _window(self, api_key: str) -> _Window:
        token = hashlib.sha256(api_key.encode()).hexdigest()  # never keep a key in clear
        window = self._windows.get(token)
        if window is None:
            window = self._windows[token] = _Window()
            if len(self._windows) > MAX_KEYS:
                self._windows.popitem(last=False)
        self._windows.move_to_end(token)
        return window

    def delay(self, api_key: str) -> float:
        """Seconds to hold the next call with `api_key`; a call that goes at once is spent here."""
        with self._lock:
            window = self._window(api_key)
            now = self.clock()
            if window.remaining is None or now >= window.reset_at:
                if window.remaining is not None:
                    window.remaining = None  # a new window: the next answer says how much it holds
                return 0.0
            if window.remaining <= 0:
                return window.reset_at - now + self.margin
            window.remaining -= 1
            return 0.0

    def observe(self, api_key: str, status: int, headers: Mapping[str, str]) -> None:
        with self._lock:
            window = self._window(api_key)
            now = self.clock()
            if status == 429:
                wait = retry_after_seconds(headers)
                window.remaining = 0
                window.reset_at = now + (wait if wait is not None else 1.0)
                return
            remaining, reset = _integer(headers.get("RateLimit-Remaining")), _integer(headers.get("RateLimit-Reset"))
            if remaining is None or reset is None:
                return
            window.remaining = remaining
            window.reset_at = float(reset) if reset >= _DELTA_LIMIT else now + reset


def _integer(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 12 else None
