"""One poll of one claimed connection: the loss-free, duplicate-free ingestion loop.

For each store batch of changes since the stored checkpoint (whole pages, up to `batch_size`
invoices: batches.py), each page read by
  heartbeat (lease renewed, current key) -> provider call -> map and validate,
  -> store the batch (its invoices and what the provider no longer has)
  -> when it ends a full listing, cancel what that listing did not list
  -> heartbeat with the batch's checkpoint (its last page's).
Up to `batches_in_flight` batches (2) are stored at once, each on a store thread, and the next
one is read on a thread of its own, never more than one ahead of those stored: one batch's
round trips, authorization, lookups and the CPU of both services overlap another's writes (the
database is the bottleneck of a sync; this keeps it busy). Batches are stored side by side only
when they share no invoice and belong to the same listing, and the one completing a listing
waits for every other. A checkpoint moves only once its batch and every batch before it are
stored, so a kill at any instant replays at most the batches in flight, and ingestion is
idempotent. The lease is kept for as long as the poll works (LeaseGuard). A 404/409 from
either service (deactivated, deleted, lease taken) stops the poll at once, with no further
provider call; a failed store stops the reading too. On shutdown the batches being stored are
finished and checkpointed, the batch read ahead dropped, and the lease released.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from bobdesk_shared.logs import register_secret
from bobdesk_shared.timeutil import iso_ms, utcnow

from ..metrics import POLL_DURATION, POLLS, count_outcomes
from ..providers.base import Aborted, ProviderAdapter, ProviderError
from ..upstream import ConnectionsApi, InvalidBatch, InvoicesApi, Refused, UpstreamError
from .batches import BatchReader, StoreBatch

log = logging.getLogger(__name__)


class PollStats(Counter):
    """What one poll did, counted by name: the `stats` of its poll result."""

    NAMES = ("pages", "created", "updated", "unchanged", "cancelled", "rejected")

    def as_dict(self) -> dict:
        return {name: self[name] for name in self.NAMES}


class LeaseGuard:
    """The `CallContext` of a poll, and the keeper of its lease (a context manager).

    The lease is renewed by the heartbeat before every provider call, which hands over the current
    key, and by the batches' checkpoints; when neither came for a third of the lease (a slow store, a
    listing's completion on a large company), by a heartbeat of its own, on a thread of its own. A
    lease so lasts while its holder works, whatever a step takes, and expires only once the holder is
    gone: otherwise a step longer than the lease hands the connection to another worker, which redoes
    the same work beside it (fenced, but twice the load on the database that made the step slow).
    A renewal refused (deactivated, deleted, lease taken) stops the poll at its next call.
    """

    RENEWAL_TICK_SECONDS = 1.0

    def __init__(self, connections: ConnectionsApi, connection: dict, lease_seconds: int, stop: threading.Event):
        self.connections = connections
        self.connection_id = connection["id"]
        self.fence = connection["fence"]
        self.checkpoint: dict | None = connection.get("checkpoint")  # the last one stored
        self.lease_seconds = lease_seconds
        self.stop = stop
        # Set when the poll stops reading its pages: a page being read ahead starts no call, no wait.
        self.ended = threading.Event()
        self._renewed_at = time.monotonic()  # when the last renewal was sent (the claim, at first)
        # One lease call at a time, in the order sent: the keeper's renewal never lands after a
        # checkpoint it raced with, so the checkpoint stays the last call before a release.
        self._sending = threading.Lock()
        self._refused: Refused | None = None
        self._keeper = threading.Thread(target=self._keep, name=f"lease-{self.connection_id}", daemon=True)

    def __enter__(self) -> LeaseGuard:
        self._keeper.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.ended.set()
        self._keeper.join()

    def _halted(self) -> bool:
        return self.stop.is_set() or self.ended.is_set()

    def _heartbeat(self, checkpoint: dict | None = None, *, unless_renewed: bool = False) -> dict | None:
        """Renew the lease (storing `checkpoint`); with `unless_renewed`, only when no renewal was sent
        for a third of the lease (then None)."""
        with self._sending:
            if self._refused is not None:
                raise self._refused
            sent = time.monotonic()
            if unless_renewed and sent - self._renewed_at < self.lease_seconds / 3:
                return None
            try:
                answer = self.connections.heartbeat(self.connection_id, self.fence, self.lease_seconds, checkpoint)
            except Refused as exc:
                self._refused = exc  # whichever thread heard it, no other heartbeat follows
                raise
            self._renewed_at = sent
            return answer

    def _keep(self) -> None:
        while not self.ended.wait(self.RENEWAL_TICK_SECONDS):
            try:
                self._heartbeat(unless_renewed=True)
            except Refused:
                return
            except UpstreamError as exc:  # tried again at the next tick, long before the lease ends
                log.warning("lease renewal failed", extra={"connection": self.connection_id, "error": str(exc)})

    def before_call(self) -> str:
        if self._halted():
            raise Aborted("shutting down")
        answer = self._heartbeat()
        register_secret(answer.get("api_key"))
        return answer["api_key"]

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._halted():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.1))
        raise Aborted("shutting down")

    def store_checkpoint(self, checkpoint: dict) -> None:
        self._heartbeat(checkpoint)
        self.checkpoint = checkpoint


@dataclasses.dataclass
class Poll:
    connections: ConnectionsApi
    invoices: InvoicesApi
    adapters: dict[str, ProviderAdapter]
    lease_seconds: int
    page_size: int
    stop: threading.Event
    batch_size: int = 500  # invoices stored per batch, in whole pages (the batch endpoint takes 500)
    batches_in_flight: int = 2  # batches stored at once

    def run(self, connection: dict) -> str:
        """Poll `connection` (as claimed); the outcome: success, failure, stopped or released."""
        register_secret(connection.get("api_key"))
        started = time.monotonic()
        stats = PollStats()
        guard = LeaseGuard(self.connections, connection, self.lease_seconds, self.stop)
        provider = connection.get("provider", "unknown")
        context = {"connection": connection["id"], "client": connection.get("client"), "provider": provider,
                   "fence": connection["fence"]}
        outcome, error, error_kind = "success", None, None
        try:
            adapter = self.adapters.get(provider)
            if adapter is None:
                raise _Internal(f"no adapter for provider {provider!r}")
            with (guard, ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader,
                  ThreadPoolExecutor(self.batches_in_flight, thread_name_prefix="store") as storer):
                try:
                    checkpoint = self._store_pages(adapter, connection, guard, reader, storer, stats)
                finally:
                    guard.ended.set()  # before the reader is waited for
            self.connections.poll_success(connection["id"], connection["fence"], checkpoint, stats.as_dict(),
                                          int((time.monotonic() - started) * 1000))
        except Refused as exc:
            outcome = "stopped"
            log.info("poll stopped: the connection is no longer ours to poll", extra={**context, "reason": exc.code})
        except Aborted:
            outcome = "released"
            self._release(connection, context)
        except ProviderError as exc:
            outcome, error, error_kind = "failure", exc, exc.kind
            self._report_failure(connection, context, exc.kind, str(exc), exc.retry_after_seconds, stats,
                                 guard.checkpoint)
        except (InvalidBatch, UpstreamError, _Internal) as exc:
            outcome, error, error_kind = "failure", exc, "internal"
            self._report_failure(connection, context, "internal", str(exc), None, stats, guard.checkpoint)
        except Exception as exc:
            outcome, error, error_kind = "failure", exc, "internal"
            log.exception("poll crashed", extra=context)
            self._report_failure(connection, context, "internal", "unexpected worker error", None, stats,
                                 guard.checkpoint)
        duration = time.monotonic() - started
        POLLS.labels(provider, outcome).inc()
        POLL_DURATION.labels(provider, outcome).observe(duration)
        log.log(logging.WARNING if error else logging.INFO, "poll finished", extra={
            **context, "outcome": outcome, "stats": stats.as_dict(), "duration_ms": round(duration * 1000),
            **({"error_kind": error_kind, "error": str(error)} if error else {}),
        })
        if outcome == "success":
            self._reconcile(connection, context)
        return outcome

    def _store_pages(self, adapter: ProviderAdapter, connection: dict, guard: LeaseGuard, reader: ThreadPoolExecutor,
                     storer: ThreadPoolExecutor, stats: PollStats) -> dict | None:
        """Store every batch of changes: the next one read (and mapped) by `reader` while up to
        `batches_in_flight` are stored by `storer`; each checkpointed as soon as it and every batch
        before it are stored. The last checkpoint (the poll's result stores it)."""
        batches = BatchReader(adapter, iter(adapter.list_changes(guard, guard.checkpoint, self.page_size)),
                              connection_id=connection["id"], page_size=self.page_size, batch_size=self.batch_size)
        storing: deque[tuple[StoreBatch, Future]] = deque()  # oldest first
        checkpoint = guard.checkpoint

        def finish_oldest() -> None:
            nonlocal checkpoint
            batch, stored = storing.popleft()
            done = stored.result()  # a failed store ends the poll
            stats.update(done)
            count_outcomes(adapter.key, "poll", done)
            if not batch.last:  # the last one's rides on the poll's result
                guard.store_checkpoint(batch.checkpoint)
            checkpoint = batch.checkpoint

        ahead: Future | None = reader.submit(batches.next)
        read: StoreBatch | None = None  # read, waiting for its turn to be stored
        try:
            while ahead or read or storing:
                if self.stop.is_set() and (ahead or read):
                    if ahead:
                        wait([ahead])  # a heartbeat it sent comes before the checkpoint, the release after
                    while storing:
                        finish_oldest()
                    raise Aborted("shutting down")
                if storing and storing[0][1].done():
                    finish_oldest()
                elif read is None and ahead is not None and ahead.done():
                    try:
                        read, ahead = ahead.result(), None
                    except BaseException:  # what was sent is stored first, and its progress kept
                        ahead = None
                        while storing:
                            finish_oldest()
                        raise
                elif read is not None and len(storing) < self.batches_in_flight and read.may_be_stored_beside(
                        [batch for batch, _ in storing]):
                    stats["pages"] += len(read.pages)
                    stats["rejected"] += read.rejected
                    storing.append((read, storer.submit(self._store_batch, guard, connection, read)))
                    if not read.last:  # one read ahead of those stored, never more
                        ahead = reader.submit(batches.next)
                    read = None
                else:
                    wait([*([ahead] if ahead and read is None else []), *([storing[0][1]] if storing else [])],
                         return_when=FIRST_COMPLETED)
            return checkpoint
        finally:
            wait([stored for _, stored in storing])  # no store outlives its poll

    def _store_batch(self, guard: LeaseGuard, connection: dict, batch: StoreBatch) -> Counter:
        """Store one batch (on a store thread): its invoices, its cancellations (what the provider no longer
        has), and, when it ends a full listing, the cancellation of what that listing did not list; what
        it did, by outcome. A failure stops the reading at once (no further provider call)."""
        try:
            return self._store(connection, batch)
        except BaseException:
            guard.ended.set()
            raise

    def _store(self, connection: dict, batch: StoreBatch) -> Counter:
        done = Counter()
        at = iso_ms(utcnow())
        cancellations = [{"invoice_platform_id": identifier, "at": at} for identifier in batch.gone]
        # A listing's batch is stored even empty: invoices-service learns when the listing began.
        if batch.invoices or cancellations or batch.listing:
            result = self.invoices.store_batch(connection["id"], connection["fence"], batch.invoices, cancellations,
                                               listing=batch.listing, texts=batch.texts)
            done.update({name: result[name] for name in ("created", "updated", "unchanged", "cancelled")})
        if batch.listing_complete:
            done["cancelled"] += self.invoices.complete_listing(connection["id"], connection["fence"], batch.listing)
        return done

    def _report_failure(self, connection, context, kind, message, retry_after, stats, checkpoint) -> None:
        try:
            self.connections.poll_failure(connection["id"], connection["fence"], kind, message,
                                          retry_after_seconds=retry_after, stats=stats.as_dict(),
                                          checkpoint=checkpoint)
        except (Refused, UpstreamError) as exc:
            # The lease expires on its own; the connection is claimed again later.
            log.warning("could not report the poll failure", extra={**context, "error": str(exc)})

    def _release(self, connection, context) -> None:
        try:
            self.connections.release(connection["id"], connection["fence"])
            log.info("lease released (shutting down)", extra=context)
        except (Refused, UpstreamError) as exc:
            log.warning("could not release the lease", extra={**context, "error": str(exc)})

    def _reconcile(self, connection, context) -> None:
        try:
            answer = self.invoices.reconcile(connection["client"])
            log.info("reconciled", extra={**context, **{k: answer.get(k) for k in ("suppliers_rematched",
                                                                                  "tickets_linked")}})
        except (Refused, UpstreamError) as exc:
            log.warning("reconcile failed; the next poll retries it", extra={**context, "error": str(exc)})


class _Internal(Exception):
    pass
