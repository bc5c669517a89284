"""`make run-yooz-sim`: the simulator on YOOZ_SIM_PORT, with the demo account loaded.

One process, threaded werkzeug server: the state lives in memory.
YOOZ_SIM_HOST (127.0.0.1), YOOZ_SIM_DEMO (1: load the demo account), YOOZ_SIM_SEED.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from bobdesk_shared.config import DEFAULT_PORTS, read_int, read_str
from bobdesk_shared.logs import configure_logging

from ..serving import serve
from .app import build_app
from .state import Store

log = logging.getLogger("bobdesk_simulators.yooz")


@dataclasses.dataclass(frozen=True)
class SimSettings:
    host: str
    port: int
    demo: bool
    seed: int | None
    log_level: str
    service_name: str = "yooz-sim"


def load_sim_settings(env=None) -> SimSettings:
    env = os.environ if env is None else env
    seed = read_str(env, "YOOZ_SIM_SEED", "")
    return SimSettings(
        host=read_str(env, "YOOZ_SIM_HOST", "127.0.0.1"),
        port=read_int(env, "YOOZ_SIM_PORT", DEFAULT_PORTS["YOOZ_SIM_PORT"], minimum=0),
        demo=read_str(env, "YOOZ_SIM_DEMO", "1") != "0",
        seed=int(seed) if seed else None,
        log_level=read_str(env, "LOG_LEVEL", "INFO").upper(),
    )


def main() -> None:
    settings = load_sim_settings()
    configure_logging(settings.service_name, settings.log_level)
    store = Store(seed=settings.seed)
    if settings.demo:
        store.load_demo()
    serve(build_app(store, settings), settings.host, settings.port, log, demo_account=settings.demo)


if __name__ == "__main__":
    main()
