"""deploy/ tests: the rules package lives next to the manifests (deploy/manifest_rules/).

It is loaded by path and registered as `manifest_rules` (deploy/ holds folders such as
`base` and `tests` that must not shadow anything on sys.path)."""

import importlib.util
import sys
from pathlib import Path

import pytest

RULES_PACKAGE = Path(__file__).resolve().parent.parent / "manifest_rules"
if "manifest_rules" not in sys.modules:
    spec = importlib.util.spec_from_file_location("manifest_rules", RULES_PACKAGE / "__init__.py",
                                                  submodule_search_locations=[str(RULES_PACKAGE)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["manifest_rules"] = module
    spec.loader.exec_module(module)

manifest_rules = sys.modules["manifest_rules"]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Each overlay rendered once by `kubectl kustomize` (the tests copy before they mutate)."""
    return {overlay: manifest_rules.render(overlay) for overlay in manifest_rules.OVERLAYS}


@pytest.fixture(scope="session")
def checkov_found(rendered) -> dict[str, list]:
    """checkov's failed checks on each overlay, from one run for the session (it is slow to start)."""
    return manifest_rules.checkov(rendered)
