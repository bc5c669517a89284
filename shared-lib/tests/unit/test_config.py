import json

import pytest
from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared import config
from bobdesk_shared.logs import configure_logging
from bobdesk_shared.startup import start
from pydantic import Field


class ProbeSettings(config.SharedSettings):
    SERVICE_NAME = "probe"


def test_defaults_for_development():
    settings = config.load(ProbeSettings, {})
    assert settings.mongo_uri == "mongodb://127.0.0.1:27117/?directConnection=true"
    assert settings.connections_url == "http://127.0.0.1:8001"
    assert settings.invoices_url == "http://127.0.0.1:8002"
    assert settings.platform_db == "platform"
    assert settings.service_name == "probe" and settings.log_level == "INFO"
    assert set(settings.dev_default_secrets()) == {"JWT_SECRET", "SERVICE_JWT_SECRET", "CREDENTIALS_KEYS"}


def test_ports_move_the_default_addresses_and_empty_variables_count_as_unset():
    settings = config.load(ProbeSettings, {"EMBEDDED_MONGO_PORT": "27999", "CONNECTIONS_PORT": "9001",
                                           "INVOICES_URL": "http://invoices.internal/", "PLATFORM_DB": "",
                                           "log_level": "debug"})
    assert settings.mongo_uri == "mongodb://127.0.0.1:27999/?directConnection=true"
    assert settings.connections_url == "http://127.0.0.1:9001"
    assert settings.invoices_url == "http://invoices.internal"
    assert settings.platform_db == "platform" and settings.log_level == "DEBUG"


def test_the_process_environment_is_the_default_source(monkeypatch):
    monkeypatch.setenv("PLATFORM_DB", "from-env")
    assert config.load(ProbeSettings).platform_db == "from-env"
    assert config.load(ProbeSettings, {}).platform_db == "platform"  # a given mapping is the only source


def test_settings_are_frozen_and_their_repr_hides_secrets(settings_factory):
    settings = settings_factory()
    with pytest.raises(ValueError):
        settings.platform_db = "other"
    assert TEST_ENV["JWT_SECRET"] not in repr(settings) and TEST_ENV["CREDENTIALS_KEYS"] not in repr(settings)


@pytest.mark.parametrize("variable", ["JWT_SECRET", "SERVICE_JWT_SECRET", "CREDENTIALS_KEYS"])
def test_production_refuses_each_dev_default_and_names_it(variable):
    env = {**TEST_ENV, "ENV": "production"}
    env.pop(variable)
    with pytest.raises(config.ConfigError, match=variable):
        config.load(ProbeSettings, env)


def test_production_refuses_the_dev_key_kept_in_the_ring():
    keys = TEST_ENV["CREDENTIALS_KEYS"] + "," + config.DEV_CREDENTIALS_KEYS
    env = {**TEST_ENV, "ENV": "production", "CREDENTIALS_KEYS": keys}
    with pytest.raises(config.ConfigError, match="CREDENTIALS_KEYS"):
        config.load(ProbeSettings, env)


def test_production_refuses_one_secret_for_both_token_kinds():
    env = {**TEST_ENV, "ENV": "production", "SERVICE_JWT_SECRET": TEST_ENV["JWT_SECRET"]}
    with pytest.raises(config.ConfigError, match="SERVICE_JWT_SECRET to differ"):
        config.load(ProbeSettings, env)


def test_production_accepts_real_secrets(settings_factory):
    assert settings_factory(ENV="production").is_production


def test_a_component_started_on_dev_secrets_says_so_in_its_json_log(capsys):
    settings = config.load(ProbeSettings, {"JWT_SECRET": "a-real-one-0123456789abcdef0123456789"})
    start(settings).close()
    warning, = [entry for entry in map(json.loads, capsys.readouterr().err.splitlines())
                if entry["msg"] == "using public dev default secrets"]
    assert warning["variables"] == ["SERVICE_JWT_SECRET", "CREDENTIALS_KEYS"] and warning["service"] == "probe"
    configure_logging("probe")


@pytest.mark.parametrize("env, message", [
    ({"CONNECTIONS_PORT": "x"}, "CONNECTIONS_PORT: Input should be a valid integer.*got 'x'"),
    ({"CONNECTIONS_PORT": "0"}, "CONNECTIONS_PORT: Input should be greater than or equal to 1.*got '0'"),
    ({"INVOICES_PORT": "70000"}, "INVOICES_PORT: Input should be less than or equal to 65535"),
    ({"ENV": "staging"}, "ENV: Input should be 'development', 'test' or 'production'.*got 'staging'"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'.*got 'LOUD'"),
])
def test_a_bad_value_is_refused_with_a_message_naming_the_variable(env, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(ProbeSettings, {**TEST_ENV, **env})


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(config.ConfigError) as caught:
        config.load(ProbeSettings, {**TEST_ENV, "CONNECTIONS_PORT": "x", "ENV": "staging"})
    assert "CONNECTIONS_PORT:" in str(caught.value) and "ENV:" in str(caught.value)


class WithAlias(config.EnvSettings):
    SECRET_VARIABLES = frozenset({"PROBE_KEY"})
    lease_seconds: int = Field(60, ge=10, validation_alias="PROBE_LEASE_SECONDS")
    key_length: int = Field(32, ge=16, validation_alias="PROBE_KEY")


def test_an_aliased_field_is_named_by_its_variable_and_a_secret_value_is_not_repeated():
    with pytest.raises(config.ConfigError, match="PROBE_LEASE_SECONDS: Input should be greater than or equal to 10"):
        config.read(WithAlias, {"PROBE_LEASE_SECONDS": "5"})
    with pytest.raises(config.ConfigError) as caught:
        config.read(WithAlias, {"PROBE_KEY": "not-a-number-s3cr3t"})
    assert str(caught.value).startswith("PROBE_KEY:") and "s3cr3t" not in str(caught.value)
