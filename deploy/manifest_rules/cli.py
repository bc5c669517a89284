"""`python deploy/manifest_rules [dev|prod ...]`: render, validate and report each overlay."""

from __future__ import annotations

from .checkov_runner import checkov
from .model import OVERLAYS, RULES, check, render


def main(argv: list[str]) -> int:
    failed = False
    overlays = {overlay: render(overlay) for overlay in argv or OVERLAYS}
    generic = checkov(overlays)
    for overlay, resources in overlays.items():
        violations = check(resources, production=overlay == "prod") + generic[overlay]
        for violation in violations:
            print(f"overlays/{overlay}: {violation}")
        print(f"overlays/{overlay}: {'FAILED' if violations else 'ok'} ({len(RULES)} rules and checkov's checks)")
        failed |= bool(violations)
    return 1 if failed else 0
