import pytest
from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared import config


def test_defaults_for_development(settings_factory):
    settings = config.load(type(settings_factory()), "probe", {})
    assert settings.mongo_uri == "mongodb://127.0.0.1:27117/?directConnection=true"
    assert settings.connections_url == "http://127.0.0.1:8001"
    assert settings.invoices_url == "http://127.0.0.1:8002"
    assert settings.platform_db == "platform"
    assert set(settings.dev_default_secrets()) == {"JWT_SECRET", "SERVICE_JWT_SECRET", "CREDENTIALS_KEYS"}


@pytest.mark.parametrize("variable", ["JWT_SECRET", "SERVICE_JWT_SECRET", "CREDENTIALS_KEYS"])
def test_production_refuses_each_dev_default_and_names_it(settings_factory, variable):
    env = {**TEST_ENV, "ENV": "production"}
    env.pop(variable)
    with pytest.raises(config.ConfigError, match=variable):
        config.load(type(settings_factory()), "probe", env)


def test_production_refuses_the_dev_key_kept_in_the_ring(settings_factory):
    keys = TEST_ENV["CREDENTIALS_KEYS"] + "," + config.DEV_CREDENTIALS_KEYS
    env = {**TEST_ENV, "ENV": "production", "CREDENTIALS_KEYS": keys}
    with pytest.raises(config.ConfigError, match="CREDENTIALS_KEYS"):
        config.load(type(settings_factory()), "probe", env)


def test_production_accepts_real_secrets(settings_factory):
    settings = config.load(type(settings_factory()), "probe", {**TEST_ENV, "ENV": "production"})
    assert settings.is_production


@pytest.mark.parametrize("env", [{"CONNECTIONS_PORT": "x"}, {"CONNECTIONS_PORT": "0"}, {"ENV": "staging"},
                                 {"LOG_LEVEL": "LOUD"}])
def test_invalid_values_are_refused(settings_factory, env):
    with pytest.raises(config.ConfigError):
        config.load(type(settings_factory()), "probe", {**TEST_ENV, **env})
