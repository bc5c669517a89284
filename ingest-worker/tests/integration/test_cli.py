"""`python -m ingest_worker.cli ensure-indexes` (the deployment's ensure-indexes-ingest job)."""

from ingest_worker import cli


def test_the_ensure_indexes_command(test_env, mongo_client, monkeypatch):
    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["ensure-indexes"]) == 0
    indexes = mongo_client[test_env["INGEST_DB"]]["webhook_events"].index_information()
    assert indexes["event_once"]["unique"] and indexes["retention"]["expireAfterSeconds"] == 0
