"""Secrets at rest: sealed in the database, re-encrypted by rotate-keys, never stored in clear."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import bson
from bobdesk_shared.crypto import KeyRing
from bson import ObjectId
from connections_service.cli import rotate_keys
from connections_service.repository import ConnectionRepository
from connections_service.services import SecretBox

from ..conftest import API_KEY, WEBHOOK_SECRET

NEW_KEY = "t2:" + base64.b64encode(b"a-brand-new-credentials-key-32by").decode()


def every_stored_byte(mongo_client) -> bytes:
    """Every document of every collection of every database, as raw BSON."""
    blob = bytearray()
    for name in mongo_client.list_database_names():
        database = mongo_client[name]
        for collection in database.list_collection_names():
            for doc in database[collection].find():
                blob += bson.encode(doc)
    return bytes(blob)


def test_no_secret_is_stored_in_clear_anywhere(create, http, company, mongo_client, db):
    created = create(webhookSecret=WEBHOOK_SECRET).get_json()
    http.patch(f"/invoice-connections/{created['id']}", json={"apiKey": "yz_live_sk_second_value"},
               headers=company.headers)
    stored = every_stored_byte(mongo_client)
    for secret in (API_KEY, WEBHOOK_SECRET, "yz_live_sk_second_value"):
        for form in (secret.encode(), secret.encode("utf-16-le"), base64.b64encode(secret.encode())):
            assert form not in stored
    doc = db.connections.find_one({"_id": ObjectId(created["id"])})
    assert set(doc["secrets"]) == {"apiKey", "webhookSecret"}
    assert all(set(sealed) == {"kid", "ct"} for sealed in doc["secrets"].values())


def test_each_ciphertext_is_fresh(create, other_company, db):
    first = create().get_json()
    second = create(as_company=other_company).get_json()
    ciphertexts = [db.connections.find_one({"_id": ObjectId(c["id"])})["secrets"]["apiKey"]["ct"]
                   for c in (first, second)]
    assert ciphertexts[0] != ciphertexts[1]  # same key, fresh nonce


def test_rotate_keys_reencrypts_everything_under_the_first_key_and_is_rerunnable(create, other_company, db, settings):
    ids = [create(webhookSecret=WEBHOOK_SECRET).get_json()["id"], create(as_company=other_company).get_json()["id"]]
    old_kid = KeyRing.parse(settings.credentials_keys).primary_kid
    repository = ConnectionRepository(db)
    box = SecretBox(KeyRing.parse(f"{NEW_KEY},{settings.credentials_keys}"))
    assert rotate_keys(repository, box) == {"connections": 2, "reencrypted": 2, "current": 0,
                                            "changed_meanwhile": 0, "undecryptable": 0}
    for doc in db.connections.find({"_id": {"$in": [ObjectId(i) for i in ids]}}):
        assert {sealed["kid"] for sealed in doc["secrets"].values()} == {"t2"} != {old_kid}
        assert box.open(doc, "apiKey") == API_KEY
    assert rotate_keys(repository, box)["current"] == 2
    # The old key can go now: the new ring alone opens everything.
    only_new = SecretBox(KeyRing.parse(NEW_KEY))
    assert all(only_new.open(doc, "apiKey") == API_KEY for doc in db.connections.find())


def test_rotate_keys_never_overwrites_a_secret_changed_meanwhile(create, db, settings):
    created = create().get_json()
    repository = ConnectionRepository(db)
    box = SecretBox(KeyRing.parse(f"{NEW_KEY},{settings.credentials_keys}"))
    doc = db.connections.find_one({"_id": ObjectId(created["id"])})
    stale = doc["secrets"]
    fresh_from_patch = SecretBox(KeyRing.parse(settings.credentials_keys)).seal(doc["_id"], "apiKey", "patched")
    db.connections.update_one({"_id": doc["_id"]}, {"$set": {"secrets.apiKey": fresh_from_patch}})
    assert repository.replace_secrets(doc["_id"], stale, {"apiKey": box.seal(doc["_id"], "apiKey", API_KEY)}) is False
    assert box.open(db.connections.find_one({"_id": doc["_id"]}), "apiKey") == "patched"


def test_rotate_keys_command(create, test_env, settings, db):
    create()
    env = {**os.environ, **test_env, "CREDENTIALS_KEYS": f"{NEW_KEY},{settings.credentials_keys}"}
    run = subprocess.run([sys.executable, "-m", "connections_service.cli", "rotate-keys"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["reencrypted"] == 1
    assert API_KEY not in run.stdout + run.stderr
    assert db.connections.find_one()["secrets"]["apiKey"]["kid"] == "t2"


def test_ensure_indexes_command(test_env, mongo_client, settings):
    run = subprocess.run([sys.executable, "-m", "connections_service.cli", "ensure-indexes"],
                         env={**os.environ, **test_env}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    names = set(mongo_client[settings.connections_db].connections.index_information())
    assert {"one_active_per_provider", "client_id", "due"} <= names
