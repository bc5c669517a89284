"""Dates as every API renders them: ISO-8601 UTC with milliseconds."""

from __future__ import annotations

import datetime as dt

import pytest
from bobdesk_shared.timeutil import iso_ms
from bson.tz_util import utc as bson_utc

PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(("value", "text"), [
    (dt.datetime(2024, 3, 12, 8, 0, 0, 250000, tzinfo=dt.UTC), "2024-03-12T08:00:00.250Z"),
    (dt.datetime(2024, 3, 12, 8, 0, 0, 250000, tzinfo=bson_utc), "2024-03-12T08:00:00.250Z"),  # what pymongo decodes
    (dt.datetime(2024, 3, 12, 8, 0, 0, 999999), "2024-03-12T08:00:00.999Z"),  # naive is UTC; truncated, not rounded
    (dt.datetime(2024, 3, 12, 10, 0, 0, 1000, tzinfo=PARIS_SUMMER), "2024-03-12T08:00:00.001Z"),
    (dt.datetime(2024, 1, 1, 1, tzinfo=PARIS_SUMMER), "2023-12-31T23:00:00.000Z"),
    (dt.date(2024, 3, 12), "2024-03-12T00:00:00.000Z"),
    (dt.datetime(999, 1, 2, tzinfo=dt.UTC), "0999-01-02T00:00:00.000Z"),
    (None, None),
])
def test_iso_ms(value, text):
    assert iso_ms(value) == text
