"""The ingest worker: the poller, the webhook receiver and the provider adapters (see its README)."""
