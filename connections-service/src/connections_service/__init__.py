"""connections-service: a company's provider connections, their sealed secrets and poll leases."""
