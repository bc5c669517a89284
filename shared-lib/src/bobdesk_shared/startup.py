"""The start-up every component shares: logs first, then its database client.

A component that cannot reach its database at start still starts (`/readyz`
answers 503 until it can); its indexes are ensured again at the next start.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .config import SharedSettings
from .logs import configure_logging
from .mongo import connect

log = logging.getLogger(__name__)


def start(settings: SharedSettings) -> MongoClient:
    """JSON logs named after the process, a warning if it runs on dev secrets, then a client named the same."""
    configure_logging(settings.service_name, settings.log_level)
    weak = settings.dev_default_secrets()
    if weak:
        log.warning("using public dev default secrets", extra={"variables": weak})
    return connect(settings.mongo_uri, settings.service_name)


def ensure_indexes_or_defer(ensure: Callable[[], object], database_variable: str) -> None:
    try:
        ensure()
    except PyMongoError:
        log.warning(f"{database_variable} unreachable at start; indexes not ensured",
                    extra={"database": database_variable})


Command = Callable[[SharedSettings, MongoClient], int | None]


def run_command(argv: Sequence[str] | None, settings: SharedSettings, *, prog: str, description: str | None,
                commands: Mapping[str, Command]) -> int:
    """An operations command line (`python -m <component>.cli <command>`): the command named on it
    runs with the component's settings and database client; its exit status is the command's (0 for None)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(commands))
    command = parser.parse_args(argv).command
    client = start(settings)
    try:
        return commands[command](settings, client) or 0
    finally:
        client.close()
