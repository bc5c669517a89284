"""The Yooz simulator: the Yooz API our adapter speaks, in memory, with demo data, an admin API and fault injection.

`python -m bobdesk_simulators.yooz` serves it on YOOZ_SIM_PORT (8090);
`python -m bobdesk_simulators.yooz.cli --help` drives it.
"""
