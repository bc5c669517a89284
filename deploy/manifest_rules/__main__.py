"""`python deploy/manifest_rules [dev|prod ...]` (or `python -m manifest_rules` from deploy/)."""

import sys
from pathlib import Path

if not __package__:  # run as a directory: import the package from deploy/, as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from manifest_rules.cli import main

sys.exit(main(sys.argv[1:]))
