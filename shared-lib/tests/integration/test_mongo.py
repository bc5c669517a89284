import pytest
from bobdesk_devtools.testing import CommandCounter
from bobdesk_shared import mongo
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError, OperationFailure


def test_connect_ping_and_indexes(mongo_uri, db_names):
    counter = CommandCounter()
    client = mongo.connect(mongo_uri, "probe", event_listeners=[counter])
    try:
        assert mongo.ping(client)
        coll = client[db_names["INGEST_DB"]]["things"]
        names = mongo.ensure_indexes(coll, [IndexModel([("a", 1), ("b", 1)], unique=True, name="a_b")])
        assert names == ["a_b"]
        assert "a_b" in coll.index_information()
        mongo.ensure_indexes(coll, [IndexModel([("a", 1), ("b", 1)], unique=True, name="a_b")])  # idempotent
        counter.reset()
        coll.insert_one({"a": 1, "b": 2})
        assert counter.by_name() == {"insert": 1}
    finally:
        client.drop_database(db_names["INGEST_DB"])
        client.close()


def test_ping_is_false_when_nothing_listens():
    client = mongo.connect("mongodb://127.0.0.1:1/?directConnection=true", "probe", serverSelectionTimeoutMS=200)
    assert mongo.ping(client, timeout_seconds=0.5) is False


def test_every_command_is_counted_and_timed_on_metrics(mongo_uri, db_names):
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0

    client = mongo.connect(mongo_uri, "probe")
    try:
        coll = client[db_names["INGEST_DB"]]["things"]
        inserts, finds = sample("mongo_commands_total", command="insert", outcome="ok"), \
            sample("mongo_commands_total", command="find", outcome="ok")
        timed = sample("mongo_command_duration_seconds_count", command="find")
        coll.insert_many([{"n": i} for i in range(3)])
        assert list(coll.find({"n": 1}, {"_id": 0})) == [{"n": 1}]
        assert sample("mongo_commands_total", command="insert", outcome="ok") == inserts + 1
        assert sample("mongo_commands_total", command="find", outcome="ok") == finds + 1
        assert sample("mongo_command_duration_seconds_count", command="find") == timed + 1
        failed = sample("mongo_commands_total", command="insert", outcome="error")
        coll.create_index("n", unique=True)
        with pytest.raises(DuplicateKeyError):
            coll.insert_one({"n": 1})
        # A duplicate key is a write error inside a successful reply, so it is still "ok".
        assert sample("mongo_commands_total", command="insert", outcome="error") == failed
        with pytest.raises(OperationFailure):
            client[db_names["INGEST_DB"]].command("noSuchCommand")
        assert sample("mongo_commands_total", command="noSuchCommand", outcome="error") == 1
    finally:
        client.drop_database(db_names["INGEST_DB"])
        client.close()
