"""Operations commands: `python -m invoices_service.cli ensure-indexes`.

The service creates its indexes at start-up too; this lets a deployment create them
ahead of time (deploy/: the ensure-indexes-invoices job), before a first rollout.
"""

from __future__ import annotations

import argparse
import sys

from bobdesk_shared.startup import start

from .config import load_settings
from .repository import InvoiceRepository

SERVICE = "invoices-cli"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m invoices_service.cli", description=__doc__)
    parser.add_argument("command", choices=["ensure-indexes"])
    parser.parse_args(argv)
    settings = load_settings(service_name=SERVICE)
    client = start(settings)
    try:
        InvoiceRepository(client[settings.invoices_db]).ensure_indexes()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
