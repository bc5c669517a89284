"""Provider adapters, registered by provider key (one per `bobdesk_shared.providers.PROVIDERS` entry)."""

from __future__ import annotations

from collections.abc import Callable

from .base import ProviderAdapter
from .yooz import YoozAdapter

# provider key -> factory(settings); a unit test checks the keys match the catalogue.
ADAPTERS: dict[str, Callable[..., ProviderAdapter]] = {
    YoozAdapter.key: YoozAdapter.from_settings,
}


def build_adapters(settings) -> dict[str, ProviderAdapter]:
    return {key: factory(settings) for key, factory in ADAPTERS.items()}
