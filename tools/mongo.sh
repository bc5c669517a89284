#!/usr/bin/env bash
# The embedded MongoDB-compatible server (SecantusDB) for development.
#   mongo.sh foreground  run it in the foreground (make run-mongo)
#   mongo.sh ensure      reuse the one on EMBEDDED_MONGO_PORT, or start it in the
#                        background; nothing at all when MONGO_URI is set
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${EMBEDDED_MONGO_PORT:-27117}
DATA=.data/mongo
URI="mongodb://127.0.0.1:$PORT/?directConnection=true"
mkdir -p "$DATA"

up() {
  .venv/bin/python - "$URI" <<'PY' 2>/dev/null
import sys
from pymongo import MongoClient
MongoClient(sys.argv[1], serverSelectionTimeoutMS=300).admin.command("ping")
PY
}

case ${1:-} in
  foreground)
    echo "embedded MongoDB on $URI (data in $DATA)"
    exec .venv/bin/secantusd-py --host 127.0.0.1 --port "$PORT" --storage-path "$DATA" --log-level WARNING
    ;;
  ensure)
    [[ -n ${MONGO_URI:-} ]] && exit 0
    exec 9>.data/mongo.lock
    flock 9
    up && exit 0
    echo "starting embedded MongoDB on $URI (log: .data/mongo.log)"
    nohup .venv/bin/secantusd-py --host 127.0.0.1 --port "$PORT" --storage-path "$DATA" --log-level WARNING \
      >>.data/mongo.log 2>&1 </dev/null &
    for _ in $(seq 1 300); do up && exit 0; sleep 0.2; done
    echo "embedded MongoDB did not start; see .data/mongo.log" >&2
    exit 1
    ;;
  *) echo "usage: $0 foreground|ensure" >&2; exit 2 ;;
esac
