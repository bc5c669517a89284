"""Development-only tools: the test plugin and helpers (`testing`) and the demo seeder (`demo`).

Installed by `make install`, never by the production image.
"""
