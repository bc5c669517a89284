"""Request validation: what the seed allows and nothing else."""

from __future__ import annotations

import marshmallow as ma
import pytest
from bobdesk_shared.providers import PROVIDERS
from connections_service.schemas import (
    ConnectionCreateSchema,
    ConnectionUpdateSchema,
    HeartbeatSchema,
    PollResultSchema,
)


def errors(schema, body):
    with pytest.raises(ma.ValidationError) as caught:
        schema().load(body)
    return caught.value.messages


def test_create_defaults_to_active():
    assert ConnectionCreateSchema().load({"provider": "yooz", "apiKey": "k"}) == {
        "provider": "yooz", "apiKey": "k", "active": True}


@pytest.mark.parametrize("body, field", [
    ({"provider": "sage", "apiKey": "k"}, "provider"),
    ({"provider": "YOOZ", "apiKey": "k"}, "provider"),
    ({"apiKey": "k"}, "provider"),
    ({"provider": "yooz"}, "apiKey"),
    ({"provider": "yooz", "apiKey": ""}, "apiKey"),
    ({"provider": "yooz", "apiKey": "k" * 4097}, "apiKey"),
    ({"provider": "yooz", "apiKey": 12}, "apiKey"),
    ({"provider": "yooz", "apiKey": None}, "apiKey"),
    ({"provider": "yooz", "apiKey": "k", "webhookSecret": 5}, "webhookSecret"),
    ({"provider": "yooz", "apiKey": "k", "webhookSecret": ""}, "webhookSecret"),
    ({"provider": "yooz", "apiKey": "k", "active": "true"}, "active"),
    ({"provider": "yooz", "apiKey": "k", "active": 1}, "active"),
    ({"provider": "yooz", "apiKey": "k", "client": "x"}, "client"),
])
def test_create_refuses(body, field):
    assert field in errors(ConnectionCreateSchema, body)


@pytest.mark.parametrize("bad", ["k\r\nX-Injected: 1", "k\n", "k\x00", "\tk", "k\x7f", "k\x85", "clé", "k€"])
def test_an_api_key_is_printable_ascii(bad):
    for schema, body in ((ConnectionCreateSchema, {"provider": "yooz", "apiKey": bad}),
                         (ConnectionUpdateSchema, {"apiKey": bad})):
        assert "apiKey" in errors(schema, body)


@pytest.mark.parametrize("bad", ["w\r\n", "w\n", "\x00w", "w\x1b", "w\x7f", "w\x9f"])
def test_a_webhook_secret_has_no_control_character(bad):
    for schema, body in ((ConnectionCreateSchema, {"provider": "yooz", "apiKey": "k", "webhookSecret": bad}),
                         (ConnectionUpdateSchema, {"webhookSecret": bad})):
        assert "webhookSecret" in errors(schema, body)


def test_printable_secrets_are_taken():
    body = {"provider": "yooz", "apiKey": "yz_live sk-~!@#$%^&*()", "webhookSecret": "whsec_clé-🔑 x"}
    assert ConnectionCreateSchema().load(body)["webhookSecret"] == "whsec_clé-🔑 x"


def test_unknown_provider_says_which_are_known():
    assert errors(ConnectionCreateSchema, {"provider": "sage", "apiKey": "k"})["provider"] == [
        "Unknown provider key; known providers: " + ", ".join(sorted(PROVIDERS)) + "."]


def test_update_needs_one_field():
    assert errors(ConnectionUpdateSchema, {})["_schema"] == ["Provide at least one of apiKey, webhookSecret, active."]


@pytest.mark.parametrize("field", ["provider", "client"])
def test_update_cannot_change_provider_or_client(field):
    assert errors(ConnectionUpdateSchema, {field: "x", "active": True})[field] == [
        f"{field} cannot be changed; create a new connection instead."]


def test_update_takes_any_of_its_fields():
    assert ConnectionUpdateSchema().load({"active": False}) == {"active": False}
    assert ConnectionUpdateSchema().load({"apiKey": "new", "webhookSecret": "w"}) == {"apiKey": "new",
                                                                                       "webhookSecret": "w"}


@pytest.mark.parametrize("body", [
    {"fence": "1", "lease_seconds": 60}, {"fence": 1.5, "lease_seconds": 60}, {"fence": True, "lease_seconds": 60},
    {"fence": 1, "lease_seconds": 5}, {"fence": 1, "lease_seconds": 601}, {"fence": -1, "lease_seconds": 60},
    {"fence": 1, "lease_seconds": 60, "checkpoint": []},
])
def test_heartbeat_refuses(body):
    errors(HeartbeatSchema, body)


def test_poll_result_failure_needs_its_error_and_a_success_has_none():
    assert "error" in errors(PollResultSchema, {"fence": 1, "outcome": "failure"})
    assert "error" in errors(PollResultSchema, {"fence": 1, "outcome": "success",
                                                "error": {"kind": "internal", "message": "x"}})
    assert "kind" in errors(PollResultSchema, {"fence": 1, "outcome": "failure",
                                               "error": {"kind": "boom", "message": "x"}})["error"]
