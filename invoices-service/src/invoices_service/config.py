from __future__ import annotations

import dataclasses

from bobdesk_shared import config

SERVICE_NAME = "invoices-service"
# The Flask app name: not "invoices-service", which Flask would resolve to the repository's
# folder of that name (a namespace package when the working directory is the repository root).
APP_NAME = "invoices"


@dataclasses.dataclass(frozen=True)
class Settings(config.SharedSettings):
    invoices_db: str


def load_settings(env=None) -> Settings:
    return config.load(
        Settings,
        APP_NAME,
        env,
        invoices_db=lambda e: config.read_str(e, "INVOICES_DB", "invoices"),
    )
