"""What every Bob! Desk invoice-platform component needs once.

config (environment), auth (JWTs), crypto (secrets at rest), errors (one JSON
shape), mongo (client factory, indexes), timeutil/ids, logs (JSON + redaction),
web (app factory with health, metrics and OpenAPI wiring), providers (catalogue).
"""
