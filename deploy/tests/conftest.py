"""deploy/ tests: the rules module lives next to the manifests (deploy/manifest_rules.py)."""

import sys
from pathlib import Path

import pytest

DEPLOY_DIR = Path(__file__).resolve().parent.parent
if str(DEPLOY_DIR) not in sys.path:
    sys.path.insert(0, str(DEPLOY_DIR))

import manifest_rules  # noqa: E402


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Each overlay rendered once by `kubectl kustomize` (the tests copy before they mutate)."""
    return {overlay: manifest_rules.render(overlay) for overlay in manifest_rules.OVERLAYS}
