# Shared fixtures for every component's tests: a real embedded MongoDB server per
# session, isolated databases per test, tokens, and process helpers.
pytest_plugins = ["bobdesk_devtools.testing"]
