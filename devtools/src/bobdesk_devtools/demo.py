"""`python -m bobdesk_devtools.demo`: a demo company wired to the simulator's demo account.

Run by `make run` once the services are ready (YOOZ_BASE_URL set). Idempotent:
1. PLATFORM_DB: the demo company's contractors (some with the SIRET of a
   simulator supplier, one with only its SIREN, one owned by another company
   that lists the demo company as partner, one inactive) and its tickets (whose
   numbers some demo invoices quote as order reference). Fixed ids, upserted.
2. The yooz connection, created through connections-service's public API
   (reused when an active one exists), with the simulator's demo API key and
   webhook secret; beside it the pennylane connection (polled only: a token,
   no webhook secret), whose SIREN-only supplier matches a contractor by SIREN.
3. The simulator sends its demo account's webhooks to the receiver for it.
4. Ready-to-paste tokens and commands, on stdout (the logs go to stderr).
"""

from __future__ import annotations

import logging
import os
import sys

import requests
from bobdesk_shared.auth import mint_public_token, mint_user_token
from bobdesk_shared.logs import configure_logging
from bobdesk_shared.mongo import connect
from bobdesk_shared.retry import full_jitter
from bobdesk_simulators.pennylane import demo_data as pennylane_demo
from bobdesk_simulators.yooz.demo_data import (
    DEMO_ACCOUNT,
    DEMO_API_KEY,
    DEMO_TICKET_NUMBERS,
    DEMO_WEBHOOK_SECRET,
    SUPPLIERS,
)
from bson import ObjectId
from ingest_worker.config import Settings, load_settings
from pymongo import UpdateOne
from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt

log = logging.getLogger("bobdesk_devtools.demo")

DEMO_COMPANY = ObjectId("5d9b5b5b9ab7e72a4fb4ae69")
PARTNER_OWNER_COMPANY = ObjectId("5d9b5b5b9ab7e72a4fb4ae70")
DEMO_USER = "demo-accountant"
TOKEN_TTL_SECONDS = 7 * 24 * 3600
_SUPPLIER = {s.id: s for s in SUPPLIERS}


def _contractor(index: int, name: str, siret: str | None, *, owner=DEMO_COMPANY, partners=(), active=True) -> dict:
    return {"_id": ObjectId(f"64b000000000000000000{index:03d}"), "client": owner, "partners": list(partners),
            "name": name, "siret": siret, "isActive": active}


def demo_contractors() -> list[dict]:
    moreau = _SUPPLIER["SUP-104"].siret
    laurent = _SUPPLIER["SUP-105"].siret
    return [
        _contractor(1, "Plomberie Martin", _SUPPLIER["SUP-101"].siret),
        _contractor(2, "Dubois Électricité", _SUPPLIER["SUP-102"].siret),
        _contractor(3, "Serrurerie Lefèvre", _SUPPLIER["SUP-103"].siret),
        # Same SIREN, another establishment: matched by SIREN.
        _contractor(4, "Moreau Chauffage (agence Nord)", moreau[:9] + "00099"),
        # Owned by another company, the demo company is a partner.
        _contractor(5, "Nettoyage Pro IDF", _SUPPLIER["SUP-106"].siret, owner=PARTNER_OWNER_COMPANY,
                    partners=[DEMO_COMPANY]),
        # Inactive: never matched by SIREN alone.
        _contractor(6, "Vitrerie Laurent (ancien compte)", laurent[:9] + "00077", active=False),
    ]


def demo_tickets() -> list[dict]:
    return [{"_id": ObjectId(f"64c000000000000000000{n:03d}"), "client": DEMO_COMPANY, "number": number,
             "contractor": None} for n, number in enumerate(DEMO_TICKET_NUMBERS, start=1)]


def seed_platform(settings: Settings) -> None:
    client = connect(settings.mongo_uri, "ingest-demo")
    try:
        db = client[settings.platform_db]
        for name, documents in (("contractors", demo_contractors()), ("tickets", demo_tickets())):
            db[name].bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True) for d in documents])
    finally:
        client.close()


def _request(method: str, url: str, *, attempts: int = 30, **kwargs) -> requests.Response:
    """The services were just started: retry connection errors and 5xx (the platform's backoff, under 1 s)."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts), wait=full_jitter(0.2, 1.0),
        retry=retry_if_exception_type(requests.RequestException) | retry_if_result(lambda r: r.status_code >= 500),
        retry_error_callback=lambda state: state.outcome.result(),  # the last answer, or its error raised
    )
    return retrying(requests.request, method, url, timeout=10, **kwargs)


DEMO_SECRETS = {
    "yooz": {"apiKey": DEMO_API_KEY, "webhookSecret": DEMO_WEBHOOK_SECRET},
    "pennylane": {"apiKey": pennylane_demo.DEMO_API_KEY},
}


def ensure_connection(settings: Settings, user_token: str, provider: str = "yooz") -> dict:
    """The demo company's active connection to `provider`, created with its simulator's demo secrets
    when there is none."""
    headers = {"Authorization": f"Bearer {user_token}"}
    url = f"{settings.connections_url}/invoice-connections"
    for _ in range(2):
        listed = _request("GET", url, headers=headers)
        listed.raise_for_status()
        for connection in listed.json():
            if connection["provider"] == provider and connection["active"]:
                return connection
        created = _request("POST", url, headers=headers, json={
            "provider": provider, **DEMO_SECRETS[provider], "active": True})
        if created.status_code == 201:
            return created.json()
        if created.status_code != 409:  # 409: created meanwhile; list again
            raise RuntimeError(f"creating the demo connection failed: HTTP {created.status_code} {created.text[:300]}")
    raise RuntimeError("the demo connection could not be created")


def point_simulator_webhooks(settings: Settings, connection_id: str) -> str | None:
    target = f"{settings.webhooks_public_url}/webhooks/yooz/{connection_id}"
    try:
        simulator = settings.providers["yooz"].base_url
        response = _request("PATCH", f"{simulator}/_admin/accounts/{DEMO_ACCOUNT}", attempts=5,
                            json={"webhook_url": target})
    except requests.RequestException:
        response = None
    if response is None or response.status_code != 200:
        log.warning("YOOZ_BASE_URL is not the simulator; webhooks not configured")
        return None
    return target


def a_simulator_invoice(settings: Settings) -> str:
    """The id of one of the simulator's demo invoices (for the webhook example)."""
    simulator = settings.providers["yooz"].base_url
    response = _request("GET", f"{simulator}/_admin/accounts/{DEMO_ACCOUNT}/invoices", attempts=5)
    response.raise_for_status()
    return response.json()["invoices"][-1]["id"]


def console(settings: Settings, connection: dict, polled_only: dict, webhook_url: str | None, public_token: str,
            user_token: str) -> str:
    """What a developer needs to try the demo: the company, its tokens, commands to paste."""
    relative = os.path.relpath(sys.executable)
    python = sys.executable if relative.startswith("..") else relative
    sim_cli = f"{python} -m bobdesk_simulators.yooz.cli --url {settings.providers['yooz'].base_url}"
    invoices, connections = settings.invoices_url, settings.connections_url
    webhook = (f"""
  # the simulator sends a signed invoice.updated webhook to the receiver:
  {sim_cli} send-webhook {a_simulator_invoice(settings)} --type invoice.updated
  # a new simulator invoice quoting a demo ticket (signed invoice.created webhook):
  {sim_cli} add-invoice --field order_reference={DEMO_TICKET_NUMBERS[2]}""" if webhook_url else "")
    return f"""
Demo company {DEMO_COMPANY}: yooz connection {connection['id']}, pennylane connection {polled_only['id']}
(the poller ingests both simulators' demo invoices; Yooz webhooks go to {webhook_url or '(not configured)'}).

  export PUBLIC_TOKEN={public_token}
  export JARVIS_TOKEN={user_token}

  # public API: the demo company's invoices, and those linked to a ticket
  curl -s '{invoices}/api/v3.0/invoices?limit=5' -H "Authorization: Bearer $PUBLIC_TOKEN"
  curl -s '{invoices}/api/v3.0/invoices?association=linked' -H "Authorization: Bearer $PUBLIC_TOKEN"
  # jarvis: the invoice list, the connections, the connection's sync status
  curl -s {invoices}/invoices -H "Authorization: Bearer $JARVIS_TOKEN"
  curl -s {connections}/invoice-connections -H "Authorization: Bearer $JARVIS_TOKEN"
  curl -s {connections}/invoice-connections/{connection['id']}/sync -H "Authorization: Bearer $JARVIS_TOKEN"{webhook}
"""


def main() -> int:
    settings = load_settings(service_name="ingest-demo")
    configure_logging(settings.service_name, settings.log_level)
    seed_platform(settings)
    user_token = mint_user_token(settings.jwt_secret, user_id=DEMO_USER, client=DEMO_COMPANY,
                                 permissions=["accounting"], ttl_seconds=TOKEN_TTL_SECONDS)
    public_token = mint_public_token(settings.jwt_secret, client=DEMO_COMPANY, ttl_seconds=TOKEN_TTL_SECONDS)
    connection = ensure_connection(settings, user_token)
    polled_only = ensure_connection(settings, user_token, "pennylane")
    webhook_url = point_simulator_webhooks(settings, connection["id"])
    print(console(settings, connection, polled_only, webhook_url, public_token, user_token), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
