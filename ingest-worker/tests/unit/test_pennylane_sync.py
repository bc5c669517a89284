"""The Pennylane adapter's sync against the simulator in process, on a fake clock (no sockets, no waiting):
checkpoint transitions backfill -> changelog -> 422 -> backfill, batched fetches, one fetch per Supplier,
pacing on the rate-limit headers, retry-after and transient faults."""

import math

import pytest
from ingest_worker.providers.base import BadCredentials, ProviderUnavailable


def poll(adapter, call, checkpoint, page_size=100):
    pages = list(adapter.list_changes(call, checkpoint, page_size))
    assert pages[-1].last and not any(p.last for p in pages[:-1])
    return pages


def ids(pages):
    return [d["id"] for p in pages for d in p.documents]


def test_a_first_poll_backfills_then_reads_the_changelog_from_the_backfill_start(pennylane):
    account = pennylane.account(invoices=250)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    started = pennylane.clock.now
    pages = poll(adapter, call, None)
    listing = [p for p in pages if p.listing]
    assert sorted(ids(listing)) == ids(listing) and len(ids(listing)) == 250
    assert {p.listing for p in listing} == {listing[0].listing} and listing[-1].listing_complete
    assert [p.listing_complete for p in listing] == [False, False, True]
    assert [p.checkpoint["phase"] for p in listing] == ["backfill", "backfill", "changelog"]
    assert listing[-1].checkpoint["start_date"] == listing[0].listing
    assert abs(started - _unix(listing[0].listing)) < 1
    # The changelog read from the backfill's start holds the 250 inserts made before it: none is newer.
    stats = pennylane.stats(account["id"])
    assert (stats["list_requests"], stats["changelog_requests"]) == (3, 1)
    assert stats["supplier_requests"] == len({d["supplier"]["id"] for p in listing for d in p.documents})
    assert all("name" in d["supplier"] for p in listing for d in p.documents)


def test_later_polls_fetch_changes_in_id_batches_and_report_deletions(pennylane):
    account = pennylane.account(invoices=300)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    checkpoint = poll(adapter, call, None)[-1].checkpoint
    everything = sorted(pennylane.store.account(account["id"]).invoices)
    for invoice_id in everything[:150]:
        pennylane.admin.patch(f"/_admin/accounts/{account['id']}/invoices/{invoice_id}",
                              json={"fields": {"payment_status": "paid"}})
    pennylane.admin.post(f"/_admin/accounts/{account['id']}/invoices/{everything[150]}/archive")
    pennylane.admin.delete(f"/_admin/accounts/{account['id']}/invoices/{everything[151]}")
    pennylane.admin.delete(f"/_admin/accounts/{account['id']}/stats")
    pages = poll(adapter, call, checkpoint)
    assert sorted(ids(pages)) == everything[:151]
    assert [g for p in pages for g in p.gone] == [str(everything[151])]
    assert not any(p.listing for p in pages)
    stats = pennylane.stats(account["id"])
    # 153 changes: one changelog call, two `id in` fetches (100 + 51), each Supplier once.
    assert (stats["changelog_requests"], stats["list_requests"]) == (1, 2)
    assert stats["supplier_requests"] <= len(pennylane.store.account(account["id"]).suppliers)

    # Nothing changed since: one changelog call, nothing fetched again.
    pennylane.admin.delete(f"/_admin/accounts/{account['id']}/stats")
    again = poll(adapter, call, pages[-1].checkpoint)
    assert ids(again) == [] and pennylane.stats(account["id"])["requests"] == 1
    assert again[-1].checkpoint == pages[-1].checkpoint


def test_an_invoice_the_fetch_no_longer_returns_is_gone(pennylane):
    account = pennylane.account(invoices=3)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    checkpoint = poll(adapter, call, None)[-1].checkpoint
    first = min(pennylane.store.account(account["id"]).invoices)
    pennylane.admin.patch(f"/_admin/accounts/{account['id']}/invoices/{first}", json={"fields": {"label": "x"}})
    pennylane.store.account(account["id"]).invoices.pop(first)  # vanished without a delete event
    pennylane.store.account(account["id"]).invoice_ids.remove(first)
    pages = poll(adapter, call, checkpoint)
    assert ids(pages) == [] and [g for p in pages for g in p.gone] == [str(first)]


def test_a_422_from_the_changelog_starts_a_new_backfill(pennylane):
    account = pennylane.account(invoices=120)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    first = poll(adapter, call, None)
    pennylane.clock.now += 60
    pennylane.admin.post(f"/_admin/accounts/{account['id']}/changelog/expire")  # changes since the checkpoint lost
    pages = poll(adapter, call, first[-1].checkpoint)
    listing = [p for p in pages if p.listing]
    assert len(ids(listing)) == 120 and listing[-1].listing_complete
    assert listing[0].listing != first[0].listing  # a new listing: what it misses is cancelled
    assert pages[-1].checkpoint["phase"] == "changelog"
    assert pages[-1].checkpoint["start_date"] == listing[0].listing


def test_29_days_without_a_poll_is_a_422_then_a_backfill(pennylane):
    account = pennylane.account(invoices=5)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    checkpoint = poll(adapter, call, None)[-1].checkpoint
    pennylane.clock.now += 29 * 86400
    pages = poll(adapter, call, checkpoint)
    assert len(ids([p for p in pages if p.listing])) == 5


def test_a_backfill_resumes_from_its_page_checkpoint_with_the_same_listing(pennylane):
    account = pennylane.account(invoices=95)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    pages = adapter.list_changes(call, None, 10)
    first = [next(pages) for _ in range(3)]
    pages.close()  # "killed" after storing three pages
    rest = poll(adapter, call, first[-1].checkpoint, 10)
    listed = ids(first) + ids([p for p in rest if p.listing])
    assert len(listed) == 95 and len(set(listed)) == 95
    assert {p.listing for p in first + rest if p.listing} == {first[0].listing}


def test_an_unreadable_checkpoint_backfills(pennylane):
    account = pennylane.account(invoices=2)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    for checkpoint in ({"phase": "changelog", "start_date": "never"}, {"updated_since": "x"}, {}):
        assert len(ids(p for p in poll(adapter, call, checkpoint) if p.listing)) == 2


def test_a_steady_sync_is_paced_to_the_limit_and_never_throttled(pennylane):
    account = pennylane.account(invoices=2000)
    adapter, call = pennylane.adapter(), pennylane.call(account["api_key"])
    pennylane.clock.now = start = math.ceil(pennylane.clock.now / 5) * 5  # a window starts with the sync
    poll(adapter, call, None)
    stats = pennylane.stats(account["id"])
    assert stats["rate_limited"] == 0
    # 20 pages, a changelog read and the Suppliers: the least time the 25-per-5-s budget allows.
    least = (math.ceil(stats["requests"] / 25) - 1) * 5
    assert least <= pennylane.clock.now - start <= least + 5


def test_without_pacing_the_limit_answers_429_and_retry_after_is_honoured(pennylane):
    account = pennylane.account(invoices=2000)
    adapter, call = pennylane.adapter(paced=False, max_attempts=3), pennylane.call(account["api_key"])
    assert len(ids(p for p in poll(adapter, call, None) if p.listing)) == 2000
    stats = pennylane.stats(account["id"])
    assert stats["rate_limited"] > 0
    assert all(wait >= 1 for wait in pennylane.clock.waited)  # the retry-after, never a blind retry


@pytest.mark.parametrize("faults", [
    {"throttle_rate": 0.3, "retry_after": 2}, {"error_rate": 0.3}, {"malformed_rate": 0.3},
])
def test_each_fault_kind_is_retried_and_loses_nothing(pennylane, faults):
    account = pennylane.account(invoices=400)
    pennylane.admin.put(f"/_admin/accounts/{account['id']}/faults", json=faults)
    adapter, call = pennylane.adapter(max_attempts=12), pennylane.call(account["api_key"])
    listed = ids(p for p in poll(adapter, call, None) if p.listing)
    assert len(listed) == 400 and len(set(listed)) == 400


def test_a_provider_that_keeps_failing_is_unavailable_and_a_wrong_token_bad_credentials(pennylane):
    account = pennylane.account(invoices=1)
    pennylane.admin.put(f"/_admin/accounts/{account['id']}/faults", json={"error_rate": 1})
    with pytest.raises(ProviderUnavailable):
        poll(pennylane.adapter(max_attempts=2), pennylane.call(account["api_key"]), None)
    with pytest.raises(BadCredentials):
        poll(pennylane.adapter(), pennylane.call("pl_wrong_token_1"), None)


def _unix(rfc3339: str) -> float:
    from bobdesk_shared.timeutil import parse_iso

    return parse_iso(rfc3339).timestamp()
