"""The poller: `python -m ingest_worker.poller` (make run-worker).

Claims due connections, ingests their changes page by page (polling.py), runs
the webhook event processor, and serves /metrics, /healthz and /readyz on
WORKER_METRICS_PORT. SIGTERM: finish the batches in progress, release the
leases, exit.
"""
