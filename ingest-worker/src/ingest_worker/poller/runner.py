"""The claim loop: keep up to `concurrency` connections polling, claim more as slots free up.

When nothing is due it claims again every `idle_claim_seconds`, so a new
connection is polled within about a second. Leases and fences make any number
of pollers safe side by side: connections-service hands a connection to one
claimant at a time, and every call of a poll carries its fence.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from ..upstream import ConnectionsApi, Refused, UpstreamError
from .polling import Poll

log = logging.getLogger(__name__)


class ClaimLoop:
    def __init__(self, connections: ConnectionsApi, poll: Poll, *, worker_id: str, lease_seconds: int,
                 concurrency: int, idle_seconds: float, stop: threading.Event):
        self.connections = connections
        self.poll = poll
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        self.idle_seconds = idle_seconds
        self.stop = stop
        self._slots = threading.BoundedSemaphore(concurrency)

    def run(self) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="poll") as pool:
            while not self.stop.is_set():
                if not self._slots.acquire(timeout=self.idle_seconds):
                    continue
                connection = self._claim()
                if connection is None:
                    self._slots.release()
                    self.stop.wait(self.idle_seconds)
                    continue
                pool.submit(self._poll, connection)
            log.info("stopping: finishing the polls in progress")
        # Leaving the `with` waited for every poll to finish its batch and release its lease.

    def _claim(self) -> dict | None:
        try:
            return self.connections.claim(self.worker_id, self.lease_seconds)
        except (Refused, UpstreamError) as exc:
            log.warning("claim failed", extra={"error": str(exc)})
            return None

    def _poll(self, connection: dict) -> None:
        try:
            self.poll.run(connection)
        finally:
            self._slots.release()
