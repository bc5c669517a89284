"""MongoDB access every component shares: one client factory, index creation, a ping.

Written for real MongoDB 7/8 (replica set): majority writes, retryable writes and
reads, timezone-aware datetimes, bounded timeouts so a lost database fails fast
instead of hanging a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pymongo
from pymongo import IndexModel, MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError
from pymongo.write_concern import WriteConcern

log = logging.getLogger(__name__)


def connect(uri: str, app_name: str, **overrides) -> MongoClient:
    options = dict(
        appname=app_name,
        tz_aware=True,
        retryWrites=True,
        retryReads=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        socketTimeoutMS=30000,
        w="majority",
        uuidRepresentation="standard",
    )
    options.update(overrides)
    return MongoClient(uri, **options)


def ensure_indexes(collection: Collection, indexes: Iterable[IndexModel]) -> list[str]:
    """Create `indexes` (idempotent; concurrent callers are harmless) and log their names."""
    names = collection.create_indexes(list(indexes))
    log.info("indexes ensured", extra={"collection": collection.full_name, "indexes": names})
    return names


def ping(client: MongoClient, timeout_seconds: float = 2.0) -> bool:
    """True when the server answers within `timeout_seconds` (for /readyz)."""
    try:
        with pymongo.timeout(timeout_seconds):
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False


MAJORITY = WriteConcern("majority")
