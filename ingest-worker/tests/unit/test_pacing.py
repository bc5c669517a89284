"""Pacing on RateLimit-Remaining / RateLimit-Reset: spend the window, then hold until it resets."""

import pytest
from ingest_worker.providers.pacing import HeaderPacing


@pytest.fixture
def clock():
    class Clock:
        now = 1_000_000_000.0

        def __call__(self):
            return self.now

    return Clock()


def answer(remaining, reset):
    return {"RateLimit-Limit": "25", "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)}


def test_the_first_call_goes_and_the_window_is_spent_before_holding(clock):
    pacing = HeaderPacing(clock=clock, margin=0.05)
    assert pacing.delay("k") == 0
    pacing.observe("k", 200, answer(2, 1_000_000_004))
    assert [pacing.delay("k"), pacing.delay("k")] == [0, 0]  # the two left, counted before their answers
    assert pacing.delay("k") == pytest.approx(4.05)
    clock.now = 1_000_000_004.0
    assert pacing.delay("k") == 0  # a new window


def test_a_429_holds_until_its_retry_after(clock):
    pacing = HeaderPacing(clock=clock, margin=0)
    pacing.observe("k", 429, {"Retry-After": "3"})
    assert pacing.delay("k") == pytest.approx(3)


def test_a_reset_in_seconds_from_now_is_understood(clock):
    pacing = HeaderPacing(clock=clock, margin=0)
    pacing.observe("k", 200, answer(0, 2))
    assert pacing.delay("k") == pytest.approx(2)


def test_budgets_are_per_key_and_keys_are_not_kept_in_clear(clock):
    pacing = HeaderPacing(clock=clock)
    pacing.observe("key-a", 200, answer(0, 1_000_000_005))
    assert pacing.delay("key-a") > 0 and pacing.delay("key-b") == 0
    assert not any("key-a" in token for token in pacing._windows)


@pytest.mark.parametrize("headers", [{}, {"RateLimit-Remaining": "x", "RateLimit-Reset": "1"},
                                     {"RateLimit-Remaining": "-1", "RateLimit-Reset": "1"}])
def test_missing_or_unreadable_headers_never_hold(clock, headers):
    pacing = HeaderPacing(clock=clock)
    pacing.observe("k", 200, headers)
    assert pacing.delay("k") == 0
