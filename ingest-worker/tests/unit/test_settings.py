"""The worker's typed settings: defaults, its own variable names in every error, each adapter's own."""

import pytest
from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared.config import ConfigError
from ingest_worker.config import load_settings


def test_defaults_listen_on_loopback_and_convert_milliseconds():
    settings = load_settings(TEST_ENV, service_name="ingest-poller")
    assert settings.service_name == "ingest-poller" and settings.bind_host == "127.0.0.1"
    assert settings.metrics_port == 8004 and settings.lease_seconds == 60 and settings.concurrency == 4
    assert settings.idle_claim_seconds == 1.0 and settings.provider_connect_timeout == 3.05
    assert settings.provider_backoff_base == 0.5 and settings.provider_max_retry_after == 30.0
    assert settings.process_webhooks_in_receiver is True
    assert settings.webhooks_public_url == "http://127.0.0.1:8003"
    assert settings.providers["yooz"].base_url == "http://127.0.0.1:8090"


def test_the_environment_sets_each_value():
    settings = load_settings({**TEST_ENV, "BIND_HOST": "0.0.0.0", "WORKER_METRICS_PORT": "9104",
                              "WORKER_IDLE_CLAIM_MS": "250", "WEBHOOK_PROCESSOR_IN_POLLER": "0",
                              "WEBHOOKS_PORT": "9003", "YOOZ_BASE_URL": "https://yooz.example/api/"})
    assert settings.bind_host == "0.0.0.0" and settings.metrics_port == 9104
    assert settings.idle_claim_seconds == 0.25 and settings.process_webhooks_in_poller is False
    assert settings.webhooks_public_url == "http://127.0.0.1:9003"
    assert settings.providers["yooz"].base_url == "https://yooz.example/api"


@pytest.mark.parametrize("variable, value, message", [
    ("WORKER_LEASE_SECONDS", "5", "WORKER_LEASE_SECONDS: Input should be greater than or equal to 10"),
    ("WORKER_PAGE_SIZE", "500", "WORKER_PAGE_SIZE: Input should be less than or equal to 100"),
    ("WORKER_BATCH_SIZE", "501", "WORKER_BATCH_SIZE: Input should be less than or equal to 500"),
    ("WORKER_CONCURRENCY", "four", "WORKER_CONCURRENCY: Input should be a valid integer"),
    ("WORKER_IDLE_CLAIM_MS", "10", "WORKER_IDLE_CLAIM_MS: Input should be greater than or equal to 50"),
    ("WEBHOOK_PROCESSOR_IN_RECEIVER", "maybe", "WEBHOOK_PROCESSOR_IN_RECEIVER: Input should be a valid boolean"),
    ("PROVIDER_MAX_ATTEMPTS", "0", "PROVIDER_MAX_ATTEMPTS: Input should be greater than or equal to 1"),
    ("YOOZ_SIM_PORT", "port", "YOOZ_SIM_PORT: Input should be a valid integer"),
])
def test_a_bad_value_names_its_variable(variable, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({**TEST_ENV, variable: value})
