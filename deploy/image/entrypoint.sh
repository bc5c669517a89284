#!/bin/sh
# The image's entry point: `bobdesk <command> [args]`, one command per component. Each
# starts its component exactly as the Makefile does (deploy/tests/test_image.py checks
# that the gunicorn config and app strings agree with the Makefile's run-* targets).
set -eu

# gunicorn with the shared config (PORT, WEB_CONCURRENCY, GUNICORN_THREADS, ... from
# the environment). prometheus-client's multiprocess directory must exist, and start
# empty: a restarted container keeps its /tmp emptyDir, and stale files of dead
# workers would be summed into /metrics.
serve() {
    export PORT="${PORT:-$1}"
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}"
    rm -rf -- "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p -- "$PROMETHEUS_MULTIPROC_DIR"
    exec gunicorn -c python:bobdesk_shared.gunicorn_conf "$2"
}

usage() {
    cat <<'USAGE'
usage: bobdesk <command> [args]
  connections-service          gunicorn, connections_service (PORT, default CONNECTIONS_PORT or 8001)
  invoices-service             gunicorn, invoices_service (PORT, default INVOICES_PORT or 8002)
  webhooks                     gunicorn, the ingest-worker's webhook receiver (PORT, default WEBHOOKS_PORT or 8003)
  poller                       the ingest-worker's poller (/metrics on WORKER_METRICS_PORT, 8004)
  rotate-keys                  re-encrypt connection secrets with the first key of CREDENTIALS_KEYS
  ensure-indexes-connections   create connections-service's indexes
  ensure-indexes-invoices      create invoices-service's indexes
  ensure-indexes-ingest        create the ingest-worker's indexes
  <anything else>              run as given (e.g. python -m connections_service.cli --help)
USAGE
}

command="${1:-help}"
[ $# -gt 0 ] && shift
case "$command" in
    connections-service) serve "${CONNECTIONS_PORT:-8001}" 'connections_service.app:create_app()' ;;
    invoices-service) serve "${INVOICES_PORT:-8002}" 'invoices_service.app:create_app()' ;;
    webhooks) serve "${WEBHOOKS_PORT:-8003}" 'ingest_worker.webhooks.app:create_app()' ;;
    poller) exec python -m ingest_worker.poller "$@" ;;
    rotate-keys) exec python -m connections_service.cli rotate-keys "$@" ;;
    ensure-indexes-connections) exec python -m connections_service.cli ensure-indexes "$@" ;;
    ensure-indexes-invoices) exec python -m invoices_service.cli ensure-indexes "$@" ;;
    ensure-indexes-ingest) exec python -m ingest_worker.cli ensure-indexes "$@" ;;
    help | --help | -h) usage ;;
    *) exec "$command" "$@" ;;
esac
