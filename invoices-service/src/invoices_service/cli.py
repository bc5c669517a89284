"""Operations commands: `python -m invoices_service.cli ensure-indexes`.

The service creates its indexes at start-up too; this lets a deployment create them
ahead of time (deploy/: the ensure-indexes-invoices job), before a first rollout.
"""

from __future__ import annotations

import sys

from bobdesk_shared.startup import run_command

from .config import load_settings
from .repository import InvoiceRepository

SERVICE = "invoices-cli"


def ensure_indexes(settings, client) -> None:
    InvoiceRepository(client[settings.invoices_db]).ensure_indexes()


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, load_settings(service_name=SERVICE), prog="python -m invoices_service.cli",
                       description=__doc__, commands={"ensure-indexes": ensure_indexes})


if __name__ == "__main__":
    sys.exit(main())
