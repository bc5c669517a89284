"""The Yooz simulator: CONTRACTS section 5 in memory, with demo data, an admin API and fault injection.

`python -m ingest_worker.yooz_sim` serves it on YOOZ_SIM_PORT (8090);
`python -m ingest_worker.yooz_sim.cli --help` drives it.
"""
