"""checkov's generic Kubernetes checks, run once over several sets of manifests with deploy/checkov.yaml
(which says why each skipped check is skipped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from .model import DEPLOY_DIR, RenderError, Violation

CHECKOV_CONFIG = DEPLOY_DIR / "checkov.yaml"

def checkov_binary() -> str:
    """CHECKOV, or the one `make install` puts in its own virtualenv beside the project's."""
    return os.environ.get("CHECKOV") or str(Path(sys.prefix) / "checkov" / "bin" / "checkov")


def checkov(named: Mapping[str, list[dict]]) -> dict[str, list[Violation]]:
    """checkov's failed checks for each named set of manifests, all in one run (checkov is slow to start).

    A violation's rule is the check id (CKV_K8S_...), `where` the resource checkov names.
    """
    binary = checkov_binary()
    with tempfile.TemporaryDirectory(prefix="checkov-") as directory:
        for name, resources in named.items():
            Path(directory, f"{name}.yaml").write_text(yaml.safe_dump_all(resources, sort_keys=False))
        try:
            done = subprocess.run([binary, "--config-file", str(CHECKOV_CONFIG), "--directory", directory],
                                  capture_output=True, text=True, timeout=600, check=False)
        except FileNotFoundError:
            raise RenderError(f"{binary} not found: `make install` installs checkov (or set CHECKOV)") from None
    if done.returncode not in (0, 1):  # 1: some check failed
        raise RenderError(f"checkov failed ({done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    found: dict[str, list[Violation]] = {name: [] for name in named}
    for failed in report["results"]["failed_checks"]:
        found[Path(failed["file_path"]).stem].append(Violation(failed["check_id"], failed["resource"],
                                                               failed["check_name"]))
    return found
