"""Pennylane through the whole stack: a polled-only connection, its backfill and changelog, SIREN-only
matching, refused then corrected documents, 422 -> backfill with the listing's cancellations, a full
resync, and the provider's faults, never throttled by the rate limit."""

from __future__ import annotations

import pytest
import requests
from bobdesk_devtools.testing import wait_until
from bobdesk_simulators.yooz.demo_data import luhn_check_digit
from bson import ObjectId

INVOICES = 60


class PennylaneSim:
    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, **body):
        response = requests.request(method, f"{self.url}/_admin/accounts{path}", json=body or None, timeout=60)
        assert response.ok, response.text
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def pennylane(stack):
    return PennylaneSim(stack.env["PENNYLANE_BASE_URL"])


def connect(stack, company: str, api_key: str, **extra) -> requests.Response:
    return requests.post(f"{stack.connections_url}/invoice-connections", headers=stack.user(company), timeout=10,
                         json={"provider": "pennylane", "apiKey": api_key, **extra})


def sync(stack, company: str, connection_id: str, method: str = "GET", **body) -> dict:
    response = requests.request(method, f"{stack.connections_url}/invoice-connections/{connection_id}/sync",
                                headers=stack.user(company), timeout=10, json=body or None)
    assert response.ok, response.text
    return response.json()


def poll_again(stack, company: str, connection_id: str) -> None:
    """Ask a poll now and wait for one to end."""
    before = stack.connection(company, connection_id)["lastPolledAt"]
    sync(stack, company, connection_id, "POST")
    stack.wait_polled(company, connection_id, after=before, timeout=60)


def listed(stack, company: str) -> dict[str, dict]:
    return {i["invoice_platform_id"]: i for i in stack.invoices(company, provider="pennylane")}


def test_no_webhooks_for_a_polled_only_provider(stack, pennylane, cleanup):
    account = pennylane.admin("POST", "", invoices=0)
    refused = connect(stack, stack.company(), account["api_key"], webhookSecret="whsec_never_used_1")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "webhooks_not_supported"
    delivery = requests.post(f"{stack.webhooks_url}/webhooks/pennylane/{ObjectId()}", json={}, timeout=10)
    assert delivery.status_code == 404


def test_a_pennylane_company_syncs_follows_changes_and_resyncs(stack, pennylane, mongo_client, cleanup):
    company = stack.company()
    account = pennylane.admin("POST", "", invoices=INVOICES)
    path = f"/{account['id']}"
    siren_only = next(s for s in pennylane.admin("GET", f"{path}/suppliers")["suppliers"]
                      if s["reg_no"] and not s["establishment_no"])
    nic = siren_only["reg_no"] + "0042"
    contractor = mongo_client[stack.env["PLATFORM_DB"]].contractors.insert_one({
        "client": ObjectId(company), "partners": [], "name": "Moreau", "siret": nic + luhn_check_digit(nic),
        "isActive": True}).inserted_id
    by_siren = pennylane.admin("POST", f"{path}/invoices", fields={"supplier": {"id": siren_only["id"]}})
    archived = pennylane.admin("GET", f"{path}/invoices")["invoices"][0]
    pennylane.admin("POST", f"{path}/invoices/{archived['id']}/archive")

    connection = connect(stack, company, account["api_key"]).json()
    stack.wait_polled(company, connection["id"], timeout=60)
    invoices = listed(stack, company)
    assert len(invoices) == INVOICES + 1
    matched = invoices[str(by_siren["id"])]
    assert matched["supplier"]["siret"] is None and matched["supplier_id"] == str(contractor)
    assert invoices[str(archived["id"])]["state"] == "cancelled"

    # Changes: an update, a delete, a bad document refused alone, then its corrected version.
    first, second = sorted(int(i) for i in invoices)[1:3]
    pennylane.admin("PATCH", f"{path}/invoices/{first}", fields={"currency_amount": "1234.5"})
    pennylane.admin("DELETE", f"{path}/invoices/{second}")
    bad = pennylane.admin("POST", f"{path}/invoices", fields={"currency_amount": "12,50"})
    poll_again(stack, company, connection["id"])
    wait_until(lambda: listed(stack, company)[str(second)]["state"] == "cancelled", 30, 0.3, "the delete")
    invoices = listed(stack, company)
    assert str(bad["id"]) not in invoices and str(invoices[str(first)]["amounts"]["ttc"]) == "1234.5"
    pennylane.admin("PATCH", f"{path}/invoices/{bad['id']}", fields={"currency_amount": "12.50"})
    wait_until(lambda: str(bad["id"]) in listed(stack, company), 30, 0.3, "the corrected version")

    # A delete whose change expired (28 days without a poll): the 422 starts a backfill, whose listing
    # misses the invoice, which is cancelled.
    third = sorted(int(i) for i in invoices)[3]
    pennylane.admin("DELETE", f"{path}/invoices/{third}")
    pennylane.admin("POST", f"{path}/changelog/expire")
    wait_until(lambda: listed(stack, company)[str(third)]["state"] == "cancelled", 30, 0.3, "the backfill")

    # A full resync lists everything again and cancels nothing the provider still has.
    asked = sync(stack, company, connection["id"], "POST", full=True)
    assert asked["resync"]["state"] == "requested"
    wait_until(lambda: sync(stack, company, connection["id"])["lastResync"], 60, 0.3, "the resync")
    done = sync(stack, company, connection["id"])["lastResync"]
    assert done["state"] == "done" and done["cancelled"] == 0 and done["unchanged"] >= INVOICES - 1
    after = listed(stack, company)
    assert sum(i["state"] == "cancelled" for i in after.values()) == 3  # archived, deleted, expired delete
    stats = pennylane.admin("GET", f"{path}/stats")
    assert stats["rate_limited"] == 0  # paced: never throttled by the budget


@pytest.mark.parametrize("faults", [{"throttle_rate": 0.3, "retry_after": 1}, {"error_rate": 0.3},
                                    {"malformed_rate": 0.3}, {"slow_rate": 0.2, "slow_seconds": 0.3}])
def test_each_fault_kind_loses_nothing(stack, pennylane, cleanup, faults):
    company = stack.company()
    account = pennylane.admin("POST", "", invoices=150)
    pennylane.admin("PUT", f"/{account['id']}/faults", **faults)
    connection = connect(stack, company, account["api_key"]).json()
    wait_until(lambda: len(listed(stack, company)) == 150, 90, 0.5, "every invoice despite the faults")
    added = pennylane.admin("POST", f"/{account['id']}/invoices")
    wait_until(lambda: str(added["id"]) in listed(stack, company), 60, 0.5, "the change despite the faults")
    assert stack.connection(company, connection["id"])["active"]
