"""A full listing's batches mark what they list; completing it cancels the connection's invoices it missed."""

from __future__ import annotations

import datetime as dt

import pytest
from bobdesk_devtools.testing import CommandCounter
from bson import ObjectId
from invoices_service.repository import InvoiceRepository, PlatformRepository
from invoices_service.services import InvoiceService
from pymongo import MongoClient


class Clock:
    """The service's clock, moved by the test: what a listing began before or after is exact."""

    def __init__(self):
        self.now = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds: int = 5) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(app):
    clock = Clock()
    app.extensions["invoice_service"].clock = clock
    return clock


def states(invoices_db, client):
    return {d["invoice_platform_id"]: (d["state"], d.get("deleted", False))
            for d in invoices_db.invoices.find({"client": client})}


def test_completing_a_listing_cancels_only_what_it_did_not_list(api, authorizer, make_invoice, invoices_db, clock):
    client = ObjectId()
    api.ingest(client, [make_invoice("A"), make_invoice("B"), make_invoice("C")])
    api.ingest(client, [make_invoice("P-1")], provider="pennylane")  # another provider: not this listing's
    clock.advance()
    connection = authorizer.connection_for(client)
    before = invoices_db.invoices.find_one({"invoice_platform_id": "A"})
    listed = api.batch(connection, [make_invoice("A"), make_invoice("C")], listing="L1").get_json()
    assert (listed["unchanged"], listed["created"]) == (2, 0)  # listed again: nothing a reader sees moved
    after = invoices_db.invoices.find_one({"invoice_platform_id": "A"})
    assert (after["updated_at"], after["rev"], after["listing"]) == (before["updated_at"], before["rev"], "L1")
    answer = api.complete_listing(connection, "L1")
    assert answer.status_code == 200 and answer.get_json() == {"cancelled": 1}
    assert states(invoices_db, client) == {"A": ("ticket_unmatched", False), "B": ("cancelled", True),
                                           "C": ("ticket_unmatched", False), "P-1": ("ticket_unmatched", False)}
    assert api.complete_listing(connection, "L1").get_json() == {"cancelled": 0}  # idempotent


def test_an_empty_listing_cancels_everything_and_a_new_invoice_during_it_survives(api, authorizer, make_invoice,
                                                                                 invoices_db, clock):
    client = ObjectId()
    api.ingest(client, [make_invoice("A")])
    connection = authorizer.connection_for(client)
    clock.advance()
    assert api.batch(connection, [], listing="L2").status_code == 200  # the provider holds nothing
    api.ingest(client, [make_invoice("SAME-SECOND")])  # stored in the second the listing began: spared
    clock.advance()
    api.ingest(client, [make_invoice("LATE")])  # stored after the listing began (a webhook)
    assert api.complete_listing(connection, "L2").get_json() == {"cancelled": 1}
    assert states(invoices_db, client) == {"A": ("cancelled", True), "SAME-SECOND": ("ticket_unmatched", False),
                                           "LATE": ("ticket_unmatched", False)}


def test_after_a_first_sync_nothing_is_older_than_the_listing(api, authorizer, make_invoice, invoices_db, clock):
    client = ObjectId()
    connection = authorizer.connection_for(client)
    api.batch(connection, [make_invoice("A")], listing="FIRST")
    clock.advance()
    api.batch(connection, [make_invoice("B")], listing="FIRST")
    assert api.complete_listing(connection, "FIRST").get_json() == {"cancelled": 0}


def test_completing_a_first_sync_reads_one_key_and_writes_nothing(mongo_uri, settings, authorizer, make_invoice):
    counter, clock = CommandCounter(), Clock()
    mongo = MongoClient(mongo_uri, tz_aware=True, event_listeners=[counter])
    service = InvoiceService(InvoiceRepository(mongo[settings.invoices_db]),
                             PlatformRepository(mongo[settings.platform_db]), authorizer, clock)
    try:
        client = ObjectId()
        connection = authorizer.connection_for(client)
        service.ingest(connection, 1, [make_invoice("A"), make_invoice("B")], [], listing="FIRST")
        counter.reset()
        assert service.complete_listing(connection, 1, "FIRST") == {"cancelled": 0}
        # The listing's start, then the (client, _id) range before it: empty, so no update is sent.
        assert counter.by_name() == {"find": 2}, counter.commands
        clock.advance()
        service.ingest(connection, 1, [make_invoice("A")], [], listing="SECOND")
        counter.reset()
        assert service.complete_listing(connection, 1, "SECOND") == {"cancelled": 1}
        assert counter.by_name() == {"find": 2, "update": 1}, counter.commands
    finally:
        mongo.close()


def test_a_listing_never_started_is_409_and_a_bad_body_400(api, authorizer):
    connection = authorizer.connection_for(ObjectId())
    refused = api.complete_listing(connection, "never")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "unknown_listing"
    assert api.complete_listing(connection, "").status_code == 400
    assert api.batch(connection, [], listing=7).status_code == 400
