"""Provider adapters, registered by provider key (one per `bobdesk_shared.providers.PROVIDERS` entry).

A new provider is one adapter module registered here, its catalogue entry, and its simulator.
"""

from __future__ import annotations

from collections.abc import Mapping

from bobdesk_shared.providers import PROVIDERS

from .base import ProviderAdapter, WebhookAdapter
from .pennylane import PennylaneAdapter
from .yooz import YoozAdapter

# provider key -> adapter class; a unit test checks the keys (and webhook support) match the catalogue.
ADAPTERS: dict[str, type[ProviderAdapter]] = {
    YoozAdapter.key: YoozAdapter,
    PennylaneAdapter.key: PennylaneAdapter,
}


def load_provider_settings(env: Mapping[str, str]) -> dict[str, object]:
    """Each adapter's own settings, by provider key."""
    return {key: adapter.load_settings(env) for key, adapter in ADAPTERS.items()}


def build_adapters(settings) -> dict[str, ProviderAdapter]:
    return {key: adapter.from_settings(settings) for key, adapter in ADAPTERS.items()}


def webhook_adapters(adapters: Mapping[str, ProviderAdapter]) -> dict[str, WebhookAdapter]:
    """The adapters of the providers the catalogue says send webhooks."""
    return {key: adapter for key, adapter in adapters.items()
            if PROVIDERS[key].supports_webhooks and isinstance(adapter, WebhookAdapter)}


def webhook_adapter_classes() -> dict[str, type[WebhookAdapter]]:
    return {key: adapter for key, adapter in ADAPTERS.items()
            if PROVIDERS[key].supports_webhooks and issubclass(adapter, WebhookAdapter)}
