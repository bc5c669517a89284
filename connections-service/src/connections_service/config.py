from __future__ import annotations

from bobdesk_shared import config
from pydantic import Field


class Settings(config.SharedSettings):
    SERVICE_NAME = "connections-service"

    connections_db: str = "connections"
    poll_interval_seconds: int = Field(300, ge=1)


def load_settings(env=None, service_name: str | None = None) -> Settings:
    return config.load(Settings, env, service_name=service_name)
