"""One adapter per provider of the shared catalogue, no more, no fewer."""

from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared.providers import PROVIDERS
from ingest_worker.config import load_settings
from ingest_worker.providers import ADAPTERS, build_adapters
from ingest_worker.providers.base import ProviderAdapter


def test_the_registry_covers_exactly_the_provider_catalogue():
    assert set(ADAPTERS) == set(PROVIDERS)


def test_every_adapter_is_built_under_its_own_key():
    adapters = build_adapters(load_settings(TEST_ENV))
    try:
        for key, adapter in adapters.items():
            assert isinstance(adapter, ProviderAdapter)
            assert adapter.key == key
    finally:
        for adapter in adapters.values():
            adapter.close()


def test_webhook_adapters_are_exactly_the_catalogues_webhook_providers():
    from ingest_worker.providers import webhook_adapter_classes
    from ingest_worker.providers.base import WebhookAdapter

    for key, adapter in ADAPTERS.items():
        assert issubclass(adapter, WebhookAdapter) == PROVIDERS[key].supports_webhooks, key
    assert set(webhook_adapter_classes()) == {key for key, p in PROVIDERS.items() if p.supports_webhooks}


def test_each_adapter_reads_its_own_settings():
    settings = load_settings({**TEST_ENV, "YOOZ_BASE_URL": "https://yooz.example/api/"})
    assert settings.providers["yooz"].base_url == "https://yooz.example/api"
    assert set(settings.providers) == set(ADAPTERS)
    assert not hasattr(settings, "yooz_base_url")  # the worker's common settings name no provider
