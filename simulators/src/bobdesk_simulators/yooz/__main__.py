"""`make run-yooz-sim`: the simulator on YOOZ_SIM_PORT, with the demo account loaded.

One process, threaded werkzeug server: the state lives in memory.
YOOZ_SIM_HOST (127.0.0.1), YOOZ_SIM_DEMO (1: load the demo account), YOOZ_SIM_SEED.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from bobdesk_shared import config
from bobdesk_shared.logs import configure_logging
from pydantic import Field

from ..serving import serve
from .app import build_app
from .state import Store

log = logging.getLogger("bobdesk_simulators.yooz")


class SimSettings(config.EnvSettings):
    host: str = Field("127.0.0.1", validation_alias="YOOZ_SIM_HOST")
    port: int = Field(8090, ge=0, le=65535, validation_alias="YOOZ_SIM_PORT")
    demo: bool = Field(True, validation_alias="YOOZ_SIM_DEMO")
    seed: int | None = Field(None, validation_alias="YOOZ_SIM_SEED")
    log_level: config.LogLevel = "INFO"
    service_name: ClassVar[str] = "yooz-sim"


def load_sim_settings(env=None) -> SimSettings:
    return config.read(SimSettings, env)


def main() -> None:
    settings = load_sim_settings()
    configure_logging(settings.service_name, settings.log_level)
    store = Store(seed=settings.seed)
    if settings.demo:
        store.load_demo()
    serve(build_app(store, settings), settings.host, settings.port, log, demo_account=settings.demo)


if __name__ == "__main__":
    main()
