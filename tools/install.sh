#!/usr/bin/env bash
# Create .venv and install every package of the repo, pinned by constraints.txt, and
# checkov in a virtualenv of its own (.venv/checkov, pinned by deploy/checkov-constraints.txt):
# it pins packaging<24, which pytest cannot share.
# Several `make` targets may start at once: an exclusive lock makes the second wait,
# then find the stamp fresh and do nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.installed
PACKAGES=(shared-lib connections-service invoices-service ingest-worker)  # production: what the image installs
DEV_PACKAGES=(simulators devtools)  # development only: never in the image
CHECKOV_VENV=$VENV/checkov
CHECKOV_CONSTRAINTS=deploy/checkov-constraints.txt
mkdir -p .data
exec 9>.data/install.lock
flock 9

fresh() {
  [[ -f $STAMP ]] || return 1
  for input in constraints.txt requirements-dev.txt "$CHECKOV_CONSTRAINTS" */pyproject.toml; do
    [[ $input -nt $STAMP ]] && return 1
  done
  return 0
}

if [[ ${1:-} == --relock ]]; then
  rm -rf .data/lockvenv
  python3 -m venv .data/lockvenv
  .data/lockvenv/bin/pip install -q --upgrade pip
  .data/lockvenv/bin/pip install -q "${PACKAGES[@]/#/./}" "${DEV_PACKAGES[@]/#/./}" -r requirements-dev.txt
  { echo "# Pinned versions of every dependency (runtime and dev). Regenerate with 'make lock'."
    .data/lockvenv/bin/pip freeze --exclude-editable | grep -vi '^bobdesk-'; } > constraints.txt
  rm -rf .data/lockvenv-checkov
  python3 -m venv .data/lockvenv-checkov
  .data/lockvenv-checkov/bin/pip install -q --upgrade pip
  .data/lockvenv-checkov/bin/pip install -q checkov
  { sed -n '/^#/p' "$CHECKOV_CONSTRAINTS"; .data/lockvenv-checkov/bin/pip freeze; } > "$CHECKOV_CONSTRAINTS.new"
  mv "$CHECKOV_CONSTRAINTS.new" "$CHECKOV_CONSTRAINTS"
  echo "constraints.txt and $CHECKOV_CONSTRAINTS re-resolved; review 'git diff'"
  exit 0
fi

# The e2e suite renders every /docs page in headless Chromium: Debian's package, as root.
install_chromium() {
  command -v chromium >/dev/null && return 0
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "chromium is not on PATH: the browser tests will fail until it is installed (Debian: apt-get install chromium)" >&2
    return 0
  fi
  echo "installing chromium (Debian) for the browser tests..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
}

fresh && exit 0
echo "installing into $VENV (pinned by constraints.txt)..."
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
editable=()
for package in "${PACKAGES[@]}" "${DEV_PACKAGES[@]}"; do editable+=(-e "./$package"); done
"$VENV/bin/python" -m pip install -q -c constraints.txt "${editable[@]}" -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import bobdesk_shared, bobdesk_simulators, bobdesk_devtools, flask_smorest, pymongo, nacl, jwt, secantus"
[[ -x $CHECKOV_VENV/bin/python ]] || python3 -m venv "$CHECKOV_VENV"
"$CHECKOV_VENV/bin/python" -m pip install -q -c "$CHECKOV_CONSTRAINTS" checkov 2>&1 | grep -v "is ignored" || true
"$CHECKOV_VENV/bin/checkov" --version >/dev/null
install_chromium
touch "$STAMP"
echo "installed."
