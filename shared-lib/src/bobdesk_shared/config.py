"""Settings read from the environment, typed and checked by pydantic-settings.

Each component declares one settings class: `SharedSettings` fields plus its own,
each field read from the variable of its name in capitals (or its
`validation_alias`). `load` builds it from a mapping (default: the process
environment) and turns any bad value into a `ConfigError` that names the variable.
Dev defaults for secrets exist so that `make run` works on a fresh machine; a
component started on them logs a warning, and `ENV=production` refuses them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

# Public on purpose: these values are known to everybody who reads this file,
# which is exactly why production refuses them.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
DEV_SERVICE_JWT_SECRET = "dev-only-service-jwt-secret-change-me-0123456789"
DEV_CREDENTIALS_KEYS = "dev:ZGV2LW9ubHktY3JlZGVudGlhbHMta2V5LTMyYnl0ZXM="  # b"dev-only-credentials-key-32bytes"

Port = Annotated[int, Field(ge=1, le=65535)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"],
                     BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value)]


class ConfigError(RuntimeError):
    """The environment cannot make a valid configuration; the message says why."""


class EnvSettings(BaseSettings):
    """Frozen settings built by `read` from a mapping, unknown variables ignored."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")
    # Variables whose value is never repeated in an error message.
    SECRET_VARIABLES: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other_sources):
        # `read` reads the environment (or a given mapping); the class takes only what it is given.
        return (init_settings,)


class SharedSettings(EnvSettings):
    """Settings every component reads. Subclass it to add a component's own."""

    # Names the process in logs and metrics; not read from the environment.
    SERVICE_NAME: ClassVar[str] = "bobdesk"
    SECRET_VARIABLES = frozenset({"JWT_SECRET", "SERVICE_JWT_SECRET", "CREDENTIALS_KEYS", "MONGO_URI"})

    service_name: str
    env: Literal["development", "test", "production"] = "development"
    embedded_mongo_port: Port = 27117
    connections_port: Port = 8001
    invoices_port: Port = 8002
    mongo_uri: str = Field(repr=False)
    platform_db: str = "platform"
    jwt_secret: str = Field(DEV_JWT_SECRET, repr=False)
    service_jwt_secret: str = Field(DEV_SERVICE_JWT_SECRET, repr=False)
    credentials_keys: str = Field(DEV_CREDENTIALS_KEYS, repr=False)
    connections_url: str
    invoices_url: str
    log_level: LogLevel = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Where a variable is unset, the address the dev stack uses on its ports."""
        mongo_port = values.get("embedded_mongo_port", 27117)
        values.setdefault("mongo_uri", f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true")
        values.setdefault("connections_url", f"http://127.0.0.1:{values.get('connections_port', 8001)}")
        values.setdefault("invoices_url", f"http://127.0.0.1:{values.get('invoices_port', 8002)}")
        return values

    @field_validator("connections_url", "invoices_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

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
        """Refuse production on dev secrets (elsewhere `startup.start` warns about them)."""
        if not self.is_production:
            return
        weak = self.dev_default_secrets()
        if weak:
            raise ConfigError("ENV=production refuses the public dev default of " + ", ".join(weak)
                              + ": set a real value")
        if self.jwt_secret == self.service_jwt_secret:
            raise ConfigError("ENV=production needs SERVICE_JWT_SECRET to differ from JWT_SECRET")


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._mapping = env
        super().__init__(settings_cls, case_sensitive=False, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._mapping, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


E = TypeVar("E", bound=EnvSettings)
S = TypeVar("S", bound=SharedSettings)


def read(settings_cls: type[E], env: Mapping[str, str] | None = None, **given: Any) -> E:
    """`settings_cls` from `env` (default: the process environment), empty variables unset.

    `given` values are taken as they are, not from the environment. A bad value is a
    `ConfigError` naming each variable at fault.
    """
    values = _MappingSource(settings_cls, os.environ if env is None else env)()
    values.update(given)
    try:
        return settings_cls(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(settings_cls, exc)) from None


def load(settings_cls: type[S], env: Mapping[str, str] | None = None, *, service_name: str | None = None,
         **given: Any) -> S:
    """A component's settings, read and checked (production refuses dev secrets).

    `service_name` overrides the class's `SERVICE_NAME` (one settings class serving
    several processes names each); `given` values are taken as they are.
    """
    settings = read(settings_cls, env, service_name=service_name or settings_cls.SERVICE_NAME, **given)
    settings.check()
    return settings


def _explain(settings_cls: type[EnvSettings], error: ValidationError) -> str:
    """`NAME: what is wrong (got 'value')` for each bad variable, secrets not repeated."""
    lines = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        info = settings_cls.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        variable = alias if isinstance(alias, str) else field.upper()
        message = f"{variable}: {problem['msg']}"
        if variable not in settings_cls.SECRET_VARIABLES and "input" in problem:
            message += f" (got {problem['input']!r})"
        lines.append(message)
    return "; ".join(lines)
