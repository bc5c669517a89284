from __future__ import annotations

import limits
from bobdesk_shared import config
from bobdesk_shared.auth import INVOICES_SERVICE
from pydantic import field_validator


class Settings(config.SharedSettings):
    SERVICE_NAME = INVOICES_SERVICE

    invoices_db: str = "invoices"
    public_api_rate_limit: str = "600/minute"

    @field_validator("public_api_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError("must read like '600/minute'") from None
        return value


def load_settings(env=None, service_name: str | None = None) -> Settings:
    return config.load(Settings, env, service_name=service_name)
