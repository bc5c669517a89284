"""MongoDB access every component shares: one client factory, index creation, a ping.

Written for real MongoDB 7/8 (replica set): majority writes, retryable writes and
reads, timezone-aware datetimes, bounded timeouts so a lost database fails fast
instead of hanging a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

import pymongo
from prometheus_client import Counter, Histogram
from pymongo import IndexModel, MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, PyMongoError

log = logging.getLogger(__name__)


MONGO_COMMANDS = Counter("mongo_commands_total", "Database commands sent, by command and outcome",
                         ["command", "outcome"])
MONGO_COMMAND_SECONDS = Histogram("mongo_command_duration_seconds", "Database command round trips, by command",
                                  ["command"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                        1, 2.5, 5, 10))


# Handshakes, heartbeats and probes of the driver itself (and /readyz's ping), not work a request asked for.
DRIVER_COMMANDS = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart", "saslContinue",
                             "buildInfo", "getLastError"})


class CommandMetrics(monitoring.CommandListener):
    """Counts and times every command a client sends: the round trips per request show on /metrics."""

    def started(self, event):
        pass

    def succeeded(self, event):
        self._observe(event, "ok")

    def failed(self, event):
        self._observe(event, "error")

    def _observe(self, event, outcome: str) -> None:
        if event.command_name not in DRIVER_COMMANDS:
            MONGO_COMMANDS.labels(event.command_name, outcome).inc()
            MONGO_COMMAND_SECONDS.labels(event.command_name).observe(event.duration_micros / 1e6)


def client_options(uri: str, app_name: str) -> dict:
    """MongoClient options with bounded timeouts, so a lost database fails fast instead of hanging a
    request; an option the URI names itself (an operator's `serverSelectionTimeoutMS=...`) wins."""
    defaults = dict(
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
    in_uri = {name.lower() for name in parse_qs(urlsplit(uri).query)}
    options = {name: value for name, value in defaults.items() if name.lower() not in in_uri}
    return {**options, "event_listeners": [CommandMetrics()]}


def connect(uri: str, app_name: str, **overrides) -> MongoClient:
    options = client_options(uri, app_name)
    listeners = options["event_listeners"] + list(overrides.pop("event_listeners", ()))
    return MongoClient(uri, **{**options, **overrides, "event_listeners": listeners})


def ensure_indexes(collection: Collection, indexes: Iterable[IndexModel]) -> list[str]:
    """Create `indexes` (idempotent; concurrent callers are harmless) and log their names."""
    names = collection.create_indexes(list(indexes))
    log.info("indexes ensured", extra={"collection": collection.full_name, "indexes": names})
    return names


def unreachable(error: PyMongoError) -> bool:
    """The server could not be reached, has no primary, or did not answer in time: retrying later
    may succeed (any other error is a bug or a refused command)."""
    return isinstance(error, ConnectionFailure) or error.timeout


def ping(client: MongoClient, timeout_seconds: float = 2.0) -> bool:
    """True when the server answers within `timeout_seconds` (for /readyz)."""
    try:
        with pymongo.timeout(timeout_seconds):
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False

