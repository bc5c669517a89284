"""`make run-pennylane-sim`: the simulator on PENNYLANE_SIM_PORT, with the demo account loaded.

One process, threaded werkzeug server: the state lives in memory.
PENNYLANE_SIM_HOST (127.0.0.1), PENNYLANE_SIM_DEMO (1: load the demo account),
PENNYLANE_SIM_SEED, PENNYLANE_SIM_RATE_LIMIT (25 requests per token and window),
PENNYLANE_SIM_RATE_WINDOW_SECONDS (5), PENNYLANE_SIM_CHANGELOG_RETENTION_DAYS (28).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import ClassVar

from bobdesk_shared import config
from bobdesk_shared.logs import configure_logging
from pydantic import Field

from ..serving import serve
from .app import build_app
from .state import RateLimit, Store

log = logging.getLogger("bobdesk_simulators.pennylane")
DEFAULT_PORT = 8091


class SimSettings(config.EnvSettings):
    host: str = Field("127.0.0.1", validation_alias="PENNYLANE_SIM_HOST")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, validation_alias="PENNYLANE_SIM_PORT")
    demo: bool = Field(True, validation_alias="PENNYLANE_SIM_DEMO")
    seed: int | None = Field(None, validation_alias="PENNYLANE_SIM_SEED")
    rate_limit_requests: int = Field(25, ge=1, validation_alias="PENNYLANE_SIM_RATE_LIMIT")
    rate_window_seconds: int = Field(5, ge=1, validation_alias="PENNYLANE_SIM_RATE_WINDOW_SECONDS")
    retention_days: int = Field(28, ge=0, validation_alias="PENNYLANE_SIM_CHANGELOG_RETENTION_DAYS")
    log_level: config.LogLevel = "INFO"
    service_name: ClassVar[str] = "pennylane-sim"

    @property
    def rate_limit(self) -> RateLimit:
        return RateLimit(limit=self.rate_limit_requests, window_seconds=self.rate_window_seconds)

    @property
    def retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.retention_days)


def load_sim_settings(env=None) -> SimSettings:
    return config.read(SimSettings, env)


def main() -> None:
    settings = load_sim_settings()
    configure_logging(settings.service_name, settings.log_level)
    store = Store(seed=settings.seed, rate_limit=settings.rate_limit, retention=settings.retention)
    if settings.demo:
        store.load_demo()
    serve(build_app(store, settings), settings.host, settings.port, log, demo_account=settings.demo)


if __name__ == "__main__":
    main()
