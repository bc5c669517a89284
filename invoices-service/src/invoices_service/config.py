from __future__ import annotations

import dataclasses

import limits
from bobdesk_shared import config

SERVICE_NAME = "invoices-service"
# The Flask app name: not "invoices-service", which Flask would resolve to the repository's
# folder of that name (a namespace package when the working directory is the repository root).
APP_NAME = "invoices"


@dataclasses.dataclass(frozen=True)
class Settings(config.SharedSettings):
    invoices_db: str
    public_api_rate_limit: str


def _rate_limit(env) -> str:
    value = config.read_str(env, "PUBLIC_API_RATE_LIMIT", "600/minute")
    try:
        limits.parse(value)
    except ValueError:
        raise config.ConfigError(f"PUBLIC_API_RATE_LIMIT must read like '600/minute', got {value!r}") from None
    return value


def load_settings(env=None) -> Settings:
    return config.load(
        Settings,
        APP_NAME,
        env,
        invoices_db=lambda e: config.read_str(e, "INVOICES_DB", "invoices"),
        public_api_rate_limit=_rate_limit,
    )
