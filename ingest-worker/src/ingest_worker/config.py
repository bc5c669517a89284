"""The worker's settings: the shared ones, the worker's own tuning, and each adapter's own.

One settings object serves the poller, the webhook receiver and the CLI; each
names its process (`load_settings(service_name=...)`) and reads only what it
needs. Durations below one second are given in milliseconds.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Annotated, Any

from bobdesk_shared import config
from pydantic import Field, field_validator, model_validator

from .providers import load_provider_settings

Milliseconds = Annotated[int, Field(ge=0)]


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Settings(config.SharedSettings):
    SERVICE_NAME = "ingest-worker"

    ingest_db: str = "ingest"
    # provider key -> that adapter's own settings (providers.load_provider_settings)
    providers: dict[str, Any]
    poll_interval_seconds: int = Field(300, ge=1)
    webhooks_port: config.Port = 8003
    # Where the provider reaches the receiver (the demo registers it with the simulator).
    webhooks_public_url: str
    # The poller's /healthz, /readyz and /metrics: loopback unless told (the image sets 0.0.0.0).
    bind_host: str = "127.0.0.1"
    metrics_port: int = Field(8004, ge=0, le=65535, validation_alias="WORKER_METRICS_PORT")
    worker_id: str = Field(default_factory=_default_worker_id, validation_alias="WORKER_ID")
    # A lease lasts 10 to 600 s (the internal API's bounds).
    lease_seconds: int = Field(60, ge=10, le=600, validation_alias="WORKER_LEASE_SECONDS")
    # Yooz answers at most 100 invoices a page.
    page_size: int = Field(100, ge=1, le=100, validation_alias="WORKER_PAGE_SIZE")
    # Invoices stored per batch, in whole pages (poller/batches.py); invoices-service takes 500.
    batch_size: int = Field(500, ge=1, le=500, validation_alias="WORKER_BATCH_SIZE")
    # Batches of one poll stored at once (poller/polling.py): one is sent while another is stored.
    batches_in_flight: int = Field(2, ge=1, le=4, validation_alias="WORKER_BATCHES_IN_FLIGHT")
    concurrency: int = Field(4, ge=1, le=64, validation_alias="WORKER_CONCURRENCY")
    idle_claim_ms: int = Field(1000, ge=50, validation_alias="WORKER_IDLE_CLAIM_MS")
    provider_connect_timeout_ms: int = Field(3050, ge=100)
    provider_read_timeout_ms: int = Field(20000, ge=100)
    provider_max_attempts: int = Field(5, ge=1, le=20)
    provider_backoff_base_ms: Milliseconds = 500
    provider_backoff_cap_ms: Milliseconds = 8000
    provider_max_retry_after_seconds: int = Field(30, ge=0)
    # Event ids are remembered at least as long as a signature stays valid (300 s).
    webhook_event_retention_seconds: int = Field(7 * 86400, ge=600)
    webhook_max_attempts: int = Field(25, ge=1, le=1000)
    process_webhooks_in_receiver: bool = Field(True, validation_alias="WEBHOOK_PROCESSOR_IN_RECEIVER")
    process_webhooks_in_poller: bool = Field(True, validation_alias="WEBHOOK_PROCESSOR_IN_POLLER")

    @model_validator(mode="before")
    @classmethod
    def _worker_defaults(cls, values: dict[str, Any]) -> dict[str, Any]:
        values.setdefault("webhooks_public_url", f"http://127.0.0.1:{values.get('webhooks_port', 8003)}")
        return values

    @field_validator("webhooks_public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def idle_claim_seconds(self) -> float:
        return self.idle_claim_ms / 1000

    @property
    def provider_connect_timeout(self) -> float:
        return self.provider_connect_timeout_ms / 1000

    @property
    def provider_read_timeout(self) -> float:
        return self.provider_read_timeout_ms / 1000

    @property
    def provider_backoff_base(self) -> float:
        return self.provider_backoff_base_ms / 1000

    @property
    def provider_backoff_cap(self) -> float:
        return self.provider_backoff_cap_ms / 1000

    @property
    def provider_max_retry_after(self) -> float:
        return float(self.provider_max_retry_after_seconds)


def load_settings(env=None, service_name: str | None = None) -> Settings:
    """`service_name` names the process in logs (ingest-poller, ingest-webhooks, ...)."""
    env = os.environ if env is None else env
    return config.load(Settings, env, service_name=service_name, providers=load_provider_settings(env))
