from bobdesk_shared import mongo
from bobdesk_shared.testing import CommandCounter
from pymongo import IndexModel


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
