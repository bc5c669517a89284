"""The catalogue of accounts-payable providers the platform speaks to, and what each supports.

connections-service accepts a connection only for a key listed here, and refuses a webhook
secret for a provider that sends no webhooks; the webhook receiver answers 404 for such a
provider; the ingest worker registers exactly one adapter per key (a test of the worker checks
both agree). Adding a provider: its entry here, one adapter module in the worker, its simulator.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Provider:
    key: str
    name: str
    supports_webhooks: bool  # False: polled only


PROVIDERS: dict[str, Provider] = {
    "yooz": Provider(key="yooz", name="Yooz", supports_webhooks=True),
    "pennylane": Provider(key="pennylane", name="Pennylane", supports_webhooks=False),
}
