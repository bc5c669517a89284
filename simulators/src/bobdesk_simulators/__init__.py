"""Simulators of the accounts-payable providers, one subpackage per provider key.

Development, demo and test use only: `make run`, `make test` and `make bench` start them; the
production image never installs this package.
"""
