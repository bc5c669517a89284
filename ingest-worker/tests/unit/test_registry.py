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
