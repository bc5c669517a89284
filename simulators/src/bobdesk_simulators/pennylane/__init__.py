"""The Pennylane simulator: supplier invoices, Suppliers and their changelog, in memory, rate-limited.

`python -m bobdesk_simulators.pennylane` serves it on PENNYLANE_SIM_PORT (8091), with
a demo account, an admin API (`/_admin`) and fault injection.
"""
