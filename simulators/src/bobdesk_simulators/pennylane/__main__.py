"""`make run-pennylane-sim`: the simulator on PENNYLANE_SIM_PORT, with the demo account loaded.

One process, threaded werkzeug server: the state lives in memory.
PENNYLANE_SIM_HOST (127.0.0.1), PENNYLANE_SIM_DEMO (1: load the demo account),
PENNYLANE_SIM_SEED, PENNYLANE_SIM_RATE_LIMIT (25 requests per token and window),
PENNYLANE_SIM_RATE_WINDOW_SECONDS (5), PENNYLANE_SIM_CHANGELOG_RETENTION_DAYS (28).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os

from bobdesk_shared.config import read_int, read_str
from bobdesk_shared.logs import configure_logging

from ..serving import serve
from .app import build_app
from .state import RateLimit, Store

log = logging.getLogger("bobdesk_simulators.pennylane")
DEFAULT_PORT = 8091


@dataclasses.dataclass(frozen=True)
class SimSettings:
    host: str
    port: int
    demo: bool
    seed: int | None
    rate_limit: RateLimit
    retention: dt.timedelta
    log_level: str
    service_name: str = "pennylane-sim"


def load_sim_settings(env=None) -> SimSettings:
    env = os.environ if env is None else env
    seed = read_str(env, "PENNYLANE_SIM_SEED", "")
    return SimSettings(
        host=read_str(env, "PENNYLANE_SIM_HOST", "127.0.0.1"),
        port=read_int(env, "PENNYLANE_SIM_PORT", DEFAULT_PORT, minimum=0),
        demo=read_str(env, "PENNYLANE_SIM_DEMO", "1") != "0",
        seed=int(seed) if seed else None,
        rate_limit=RateLimit(limit=read_int(env, "PENNYLANE_SIM_RATE_LIMIT", 25, minimum=1),
                             window_seconds=read_int(env, "PENNYLANE_SIM_RATE_WINDOW_SECONDS", 5, minimum=1)),
        retention=dt.timedelta(days=read_int(env, "PENNYLANE_SIM_CHANGELOG_RETENTION_DAYS", 28, minimum=0)),
        log_level=read_str(env, "LOG_LEVEL", "INFO").upper(),
    )


def main() -> None:
    settings = load_sim_settings()
    configure_logging(settings.service_name, settings.log_level)
    store = Store(seed=settings.seed, rate_limit=settings.rate_limit, retention=settings.retention)
    if settings.demo:
        store.load_demo()
    serve(build_app(store, settings), settings.host, settings.port, log, demo_account=settings.demo)


if __name__ == "__main__":
    main()
