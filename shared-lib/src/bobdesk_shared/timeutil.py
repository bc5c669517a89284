"""Dates and ids as the APIs render them: ISO-8601 UTC with milliseconds, 24-hex ids.

MongoDB stores datetimes with millisecond precision, so every time we create
is truncated to the millisecond first: what we compare in Python is then what
the database holds.
"""

from __future__ import annotations

import datetime as dt
import re

from bson import ObjectId

UTC = dt.UTC


def utcnow() -> dt.datetime:
    now = dt.datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Naive datetimes from the driver are UTC; make them aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_ms(value: dt.datetime | dt.date | None) -> str | None:
    """`2024-03-12T08:00:00.000Z`; a date is midnight UTC; None stays None."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        return f"{value.isoformat()}T00:00:00.000Z"
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    # %-formatting, neither strftime nor isoformat: a list page renders 800 of these and this is the
    # fastest (half isoformat's time); milliseconds are truncated, a year keeps its leading zeros.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (the fastest, see above)
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond // 1000)


def parse_iso(value: str) -> dt.datetime:
    """Parse an ISO-8601 date-time (a trailing `Z` allowed) into aware UTC; ValueError otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError("not an ISO-8601 string")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if parsed.tzinfo is None:
        raise ValueError("an ISO-8601 time needs a time zone")
    return parsed.astimezone(UTC)


OBJECT_ID_PATTERN = "^[0-9a-f]{24}$"  # also the `pattern` APIs document for an id
_ID = re.compile(OBJECT_ID_PATTERN)


def parse_object_id(value: object) -> ObjectId | None:
    """The ObjectId a string of 24 lower-case hex characters stands for, or None (callers answer
    404/400). Ids are handed out in lower case; one spelling per id, so upper case names nothing."""
    if isinstance(value, ObjectId):
        return value
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        return None
    return ObjectId(value)
