"""Operations commands: `python -m ingest_worker.cli ensure-indexes`.

The processes create their indexes on first use too; this lets a deployment
create them ahead of time (deploy/: the ensure-indexes-ingest job).
"""

from __future__ import annotations

import sys

from bobdesk_shared.startup import run_command

from .config import load_settings
from .webhooks.events import EventStore

SERVICE = "ingest-cli"


def ensure_indexes(settings, client) -> None:
    EventStore(client[settings.ingest_db], settings.webhook_event_retention_seconds).ensure_indexes()


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, load_settings(service_name=SERVICE), prog="python -m ingest_worker.cli",
                       description=__doc__, commands={"ensure-indexes": ensure_indexes})


if __name__ == "__main__":
    sys.exit(main())
