"""Settings read from the environment (CONTRACTS section 2).

Each component declares one frozen settings dataclass built from `SharedSettings`
fields plus its own. Dev defaults for secrets exist so that `make run` works on a
fresh machine; they log a warning, and `ENV=production` refuses to start on them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Public on purpose: these values are known to everybody who reads this file,
# which is exactly why production refuses them.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
DEV_SERVICE_JWT_SECRET = "dev-only-service-jwt-secret-change-me-0123456789"
DEV_CREDENTIALS_KEYS = "dev:ZGV2LW9ubHktY3JlZGVudGlhbHMta2V5LTMyYnl0ZXM="  # b"dev-only-credentials-key-32bytes"

DEFAULT_PORTS = {
    "CONNECTIONS_PORT": 8001,
    "INVOICES_PORT": 8002,
    "WEBHOOKS_PORT": 8003,
    "YOOZ_SIM_PORT": 8090,
    "EMBEDDED_MONGO_PORT": 27117,
}


class ConfigError(RuntimeError):
    """The environment cannot make a valid configuration; the message says why."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


@dataclasses.dataclass(frozen=True)
class SharedSettings:
    """Settings every component reads. Subclass it to add a component's own."""

    env: str
    mongo_uri: str
    platform_db: str
    jwt_secret: str
    service_jwt_secret: str
    credentials_keys: str
    connections_url: str
    invoices_url: str
    log_level: str
    service_name: str

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def shared_values(cls, env: Mapping[str, str], service_name: str) -> dict:
        connections_port = _int(env, "CONNECTIONS_PORT", DEFAULT_PORTS["CONNECTIONS_PORT"], minimum=1)
        invoices_port = _int(env, "INVOICES_PORT", DEFAULT_PORTS["INVOICES_PORT"], minimum=1)
        mongo_port = _int(env, "EMBEDDED_MONGO_PORT", DEFAULT_PORTS["EMBEDDED_MONGO_PORT"], minimum=1)
        return {
            "env": _str(env, "ENV", "development"),
            "mongo_uri": _str(env, "MONGO_URI", f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"),
            "platform_db": _str(env, "PLATFORM_DB", "platform"),
            "jwt_secret": _str(env, "JWT_SECRET", DEV_JWT_SECRET),
            "service_jwt_secret": _str(env, "SERVICE_JWT_SECRET", DEV_SERVICE_JWT_SECRET),
            "credentials_keys": _str(env, "CREDENTIALS_KEYS", DEV_CREDENTIALS_KEYS),
            "connections_url": _str(env, "CONNECTIONS_URL", f"http://127.0.0.1:{connections_port}").rstrip("/"),
            "invoices_url": _str(env, "INVOICES_URL", f"http://127.0.0.1:{invoices_port}").rstrip("/"),
            "log_level": _str(env, "LOG_LEVEL", "INFO").upper(),
            "service_name": service_name,
        }

    def dev_default_secrets(self) -> list[str]:
        """Names of the variables still on their public dev default."""
        defaults = {
            "JWT_SECRET": (self.jwt_secret, DEV_JWT_SECRET),
            "SERVICE_JWT_SECRET": (self.service_jwt_secret, DEV_SERVICE_JWT_SECRET),
            "CREDENTIALS_KEYS": (self.credentials_keys, DEV_CREDENTIALS_KEYS),
        }
        # A production key ring that still carries the dev key would decrypt with it.
        names = [name for name, (value, dev) in defaults.items() if value == dev]
        if "CREDENTIALS_KEYS" not in names and DEV_CREDENTIALS_KEYS.split(":", 1)[1] in self.credentials_keys:
            names.append("CREDENTIALS_KEYS")
        return names

    def check(self) -> None:
        """Refuse production on dev secrets; warn about them elsewhere."""
        if self.env not in ("development", "production", "test"):
            raise ConfigError(f"ENV must be development, test or production, got {self.env!r}")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        weak = self.dev_default_secrets()
        if self.is_production:
            if weak:
                raise ConfigError(
                    "ENV=production refuses the public dev default of " + ", ".join(weak) + ": set a real value"
                )
            if self.jwt_secret == self.service_jwt_secret:
                raise ConfigError("ENV=production needs SERVICE_JWT_SECRET to differ from JWT_SECRET")
        elif weak:
            log.warning("using public dev default secrets", extra={"variables": weak})


def load(settings_cls, service_name: str, env: Mapping[str, str] | None = None, **own):
    """Build and check `settings_cls` from `env` (default: the process environment).

    `own` maps each extra field of `settings_cls` to a function `(env) -> value`.
    """
    env = os.environ if env is None else env
    values = SharedSettings.shared_values(env, service_name)
    values.update({name: read(env) for name, read in own.items()})
    settings = settings_cls(**values)
    settings.check()
    return settings


# Re-exported so component config modules read the environment the same way.
read_int = _int
read_str = _str
