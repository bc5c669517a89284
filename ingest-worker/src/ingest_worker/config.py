"""The worker's settings: the shared ones, the worker's own tuning, and each adapter's own.

One settings object serves the poller, the webhook receiver and the demo; each
reads only what it needs. Durations below one second are given in milliseconds.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid

from bobdesk_shared import config
from bobdesk_shared.config import ConfigError, read_int, read_str

from .providers import load_provider_settings


@dataclasses.dataclass(frozen=True)
class Settings(config.SharedSettings):
    ingest_db: str
    providers: dict  # provider key -> that adapter's own settings (providers.load_provider_settings)
    poll_interval_seconds: int
    webhooks_port: int
    webhooks_public_url: str
    metrics_port: int
    worker_id: str
    lease_seconds: int
    page_size: int
    concurrency: int
    idle_claim_seconds: float
    provider_connect_timeout: float
    provider_read_timeout: float
    provider_max_attempts: int
    provider_backoff_base: float
    provider_backoff_cap: float
    provider_max_retry_after: float
    webhook_event_retention_seconds: int
    webhook_max_attempts: int
    process_webhooks_in_receiver: bool
    process_webhooks_in_poller: bool


def _seconds_from_ms(env, name: str, default_ms: int, *, minimum_ms: int = 0) -> float:
    return read_int(env, name, default_ms, minimum=minimum_ms) / 1000


def _flag(env, name: str, default: bool) -> bool:
    raw = read_str(env, name, "1" if default else "0").lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _bounded(env, name: str, default: int, low: int, high: int) -> int:
    value = read_int(env, name, default, minimum=low)
    if value > high:
        raise ConfigError(f"{name} must be <= {high}, got {value}")
    return value


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def load_settings(env=None, service_name: str = "ingest-worker") -> Settings:
    """`service_name` names the process in logs (and Flask apps: it must not be an importable folder name)."""
    env = os.environ if env is None else env
    webhooks_port = read_int(env, "WEBHOOKS_PORT", config.DEFAULT_PORTS["WEBHOOKS_PORT"], minimum=1)
    return config.load(
        Settings,
        service_name,
        env,
        ingest_db=lambda e: read_str(e, "INGEST_DB", "ingest"),
        providers=load_provider_settings,
        poll_interval_seconds=lambda e: read_int(e, "POLL_INTERVAL_SECONDS", 300, minimum=1),
        webhooks_port=lambda e: webhooks_port,
        # Where the provider reaches the receiver (the demo registers it with the simulator).
        webhooks_public_url=lambda e: read_str(e, "WEBHOOKS_PUBLIC_URL", f"http://127.0.0.1:{webhooks_port}").rstrip("/"),
        metrics_port=lambda e: read_int(e, "WORKER_METRICS_PORT", 8004, minimum=0),
        worker_id=lambda e: read_str(e, "WORKER_ID", _default_worker_id()),
        # internal-api.md bounds a lease to 10..600 s.
        lease_seconds=lambda e: _bounded(e, "WORKER_LEASE_SECONDS", 60, 10, 600),
        # Yooz answers at most 100 invoices a page.
        page_size=lambda e: _bounded(e, "WORKER_PAGE_SIZE", 100, 1, 100),
        concurrency=lambda e: _bounded(e, "WORKER_CONCURRENCY", 4, 1, 64),
        idle_claim_seconds=lambda e: _seconds_from_ms(e, "WORKER_IDLE_CLAIM_MS", 1000, minimum_ms=50),
        provider_connect_timeout=lambda e: _seconds_from_ms(e, "PROVIDER_CONNECT_TIMEOUT_MS", 3050, minimum_ms=100),
        provider_read_timeout=lambda e: _seconds_from_ms(e, "PROVIDER_READ_TIMEOUT_MS", 20000, minimum_ms=100),
        provider_max_attempts=lambda e: _bounded(e, "PROVIDER_MAX_ATTEMPTS", 5, 1, 20),
        provider_backoff_base=lambda e: _seconds_from_ms(e, "PROVIDER_BACKOFF_BASE_MS", 500),
        provider_backoff_cap=lambda e: _seconds_from_ms(e, "PROVIDER_BACKOFF_CAP_MS", 8000),
        provider_max_retry_after=lambda e: float(read_int(e, "PROVIDER_MAX_RETRY_AFTER_SECONDS", 30)),
        # Event ids are remembered at least as long as a signature stays valid (300 s).
        webhook_event_retention_seconds=lambda e: read_int(e, "WEBHOOK_EVENT_RETENTION_SECONDS", 7 * 86400,
                                                          minimum=600),
        webhook_max_attempts=lambda e: _bounded(e, "WEBHOOK_MAX_ATTEMPTS", 25, 1, 1000),
        process_webhooks_in_receiver=lambda e: _flag(e, "WEBHOOK_PROCESSOR_IN_RECEIVER", True),
        process_webhooks_in_poller=lambda e: _flag(e, "WEBHOOK_PROCESSOR_IN_POLLER", True),
    )
