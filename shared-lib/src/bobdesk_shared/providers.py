"""The catalogue of accounts-payable providers the platform speaks to.

connections-service accepts a connection only for a key listed here, and the
ingest worker registers exactly one adapter per key (a test of the worker checks
both agree). Adding a provider: one line here, one adapter module in the worker.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Provider:
    key: str
    name: str
    supports_webhooks: bool


PROVIDERS: dict[str, Provider] = {
    "yooz": Provider(key="yooz", name="Yooz", supports_webhooks=True),
}


def is_known(key: object) -> bool:
    return isinstance(key, str) and key in PROVIDERS
