"""Operations commands: `python -m ingest_worker.cli ensure-indexes`.

The processes create their indexes on first use too; this lets a deployment
create them ahead of time (deploy/: the ensure-indexes-ingest job).
"""

from __future__ import annotations

import argparse
import sys

from bobdesk_shared.startup import start

from .config import load_settings
from .webhooks.events import EventStore

SERVICE = "ingest-cli"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest_worker.cli", description=__doc__)
    parser.add_argument("command", choices=["ensure-indexes"])
    parser.parse_args(argv)
    settings = load_settings(service_name=SERVICE)
    client = start(settings)
    try:
        EventStore(client[settings.ingest_db], settings.webhook_event_retention_seconds).ensure_indexes()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
