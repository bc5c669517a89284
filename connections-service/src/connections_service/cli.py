"""Operations commands: `python -m connections_service.cli rotate-keys | ensure-indexes`.

rotate-keys re-encrypts every stored secret that is not under the first key of
CREDENTIALS_KEYS with that key. Safe to re-run and to run beside the live service:
each swap is conditional on the ciphertext it read, so a PATCH made meanwhile wins
(and is already under the first key).
"""

from __future__ import annotations

import json
import sys

from bobdesk_shared.crypto import DecryptionError, KeyRing
from bobdesk_shared.startup import run_command

from .config import load_settings
from .repository import ConnectionRepository
from .services import SecretBox

SERVICE = "connections-cli"


def rotate_keys(repository: ConnectionRepository, box: SecretBox) -> dict:
    counts = {"connections": 0, "reencrypted": 0, "current": 0, "changed_meanwhile": 0, "undecryptable": 0}
    for doc in repository.with_secrets():
        counts["connections"] += 1
        stale = {field: sealed for field, sealed in doc["secrets"].items() if not box.keys.is_current(sealed)}
        if not stale:
            counts["current"] += 1
            continue
        try:
            fresh = {field: box.seal(doc["_id"], field, box.open(doc, field)) for field in stale}
        except DecryptionError:
            counts["undecryptable"] += 1  # its key left CREDENTIALS_KEYS: only a new PATCH can fix it
            continue
        if repository.replace_secrets(doc["_id"], stale, fresh):
            counts["reencrypted"] += 1
        else:
            counts["changed_meanwhile"] += 1
    return counts


def _repository(settings, client) -> ConnectionRepository:
    repository = ConnectionRepository(client[settings.connections_db])
    repository.ensure_indexes()
    return repository


def ensure_indexes(settings, client) -> int:
    _repository(settings, client)
    return 0


def rotate_keys_command(settings, client) -> int:
    counts = rotate_keys(_repository(settings, client), SecretBox(KeyRing.parse(settings.credentials_keys)))
    print(json.dumps(counts))
    return 1 if counts["undecryptable"] else 0


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, load_settings(service_name=SERVICE), prog="python -m connections_service.cli",
                       description=__doc__,
                       commands={"rotate-keys": rotate_keys_command, "ensure-indexes": ensure_indexes})


if __name__ == "__main__":
    sys.exit(main())
