import base64

import pytest
from bobdesk_shared.config import ConfigError
from bobdesk_shared.crypto import DecryptionError, KeyRing, associated_data
from bson import Binary

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()
AAD = associated_data("connection", "64b2e4d19ab7e72a4fb4ac20", "apiKey")


def test_round_trip_and_ciphertext_hides_the_value():
    ring = KeyRing.parse(OLD)
    sealed = ring.encrypt("yz_live_sk_abc", AAD)
    assert sealed["kid"] == "old"
    assert b"yz_live_sk_abc" not in bytes(sealed["ct"])
    assert ring.decrypt(sealed, AAD) == "yz_live_sk_abc"


def test_same_value_encrypts_differently_each_time():
    ring = KeyRing.parse(OLD)
    assert ring.encrypt("v", AAD)["ct"] != ring.encrypt("v", AAD)["ct"]


@pytest.mark.parametrize("position", [0, 23, 24, -1])
def test_a_flipped_byte_fails(position):
    ring = KeyRing.parse(OLD)
    sealed = ring.encrypt("secret-value", AAD)
    blob = bytearray(sealed["ct"])
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        ring.decrypt({"kid": "old", "ct": Binary(bytes(blob))}, AAD)


@pytest.mark.parametrize(
    "other",
    [
        associated_data("connection", "64b2e4d19ab7e72a4fb4ac21", "apiKey"),  # another record
        associated_data("connection", "64b2e4d19ab7e72a4fb4ac20", "webhookSecret"),  # another field
    ],
)
def test_wrong_associated_data_fails(other):
    ring = KeyRing.parse(OLD)
    with pytest.raises(DecryptionError):
        ring.decrypt(ring.encrypt("secret-value", AAD), other)


def test_unknown_key_id_fails():
    sealed = KeyRing.parse(OLD).encrypt("secret-value", AAD)
    with pytest.raises(DecryptionError, match="unknown key id"):
        KeyRing.parse(NEW).decrypt(sealed, AAD)


def test_truncated_or_foreign_values_fail():
    ring = KeyRing.parse(OLD)
    with pytest.raises(DecryptionError):
        ring.decrypt({"kid": "old", "ct": Binary(b"short")}, AAD)
    with pytest.raises(DecryptionError):
        ring.decrypt({"nothing": 1}, AAD)


def test_rotation_old_values_decrypt_new_values_use_the_new_key():
    old_ring = KeyRing.parse(OLD)
    before = old_ring.encrypt("secret-value", AAD)
    rotated = KeyRing.parse(f"{NEW},{OLD}")
    assert rotated.decrypt(before, AAD) == "secret-value"
    assert not rotated.is_current(before)
    after = rotated.encrypt("secret-value", AAD)
    assert after["kid"] == "new" and rotated.is_current(after)
    with pytest.raises(DecryptionError):
        old_ring.decrypt(after, AAD)


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "no key"),
        ("nokid", "kid:base64key"),
        (":" + base64.b64encode(b"k" * 32).decode(), "kid:base64key"),
        ("k1:not-base64!!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
        (f"{OLD},{OLD}", "twice"),
    ],
)
def test_bad_key_rings_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        KeyRing.parse(value)
