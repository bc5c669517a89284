from __future__ import annotations

import dataclasses

from bobdesk_shared import config

SERVICE_NAME = "connections-service"
# The Flask app name: not "connections-service", which Flask would resolve to the repository's
# folder of that name (a namespace package when the working directory is the repository root).
APP_NAME = "connections"


@dataclasses.dataclass(frozen=True)
class Settings(config.SharedSettings):
    connections_db: str
    poll_interval_seconds: int


def load_settings(env=None) -> Settings:
    return config.load(
        Settings,
        APP_NAME,
        env,
        connections_db=lambda e: config.read_str(e, "CONNECTIONS_DB", "connections"),
        poll_interval_seconds=lambda e: config.read_int(e, "POLL_INTERVAL_SECONDS", 300, minimum=1),
    )
