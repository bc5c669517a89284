"""What `untrusted_json.loads` refuses, and that ordinary JSON reads as the standard parser reads it."""

import json
from decimal import Decimal

import pytest
from bobdesk_shared.untrusted_json import MAX_DEPTH, InvalidJson, loads


@pytest.mark.parametrize("text", [
    '{"a": [1, 2.5, true, null, "é", "\\ud83d\\ude00"], "b": {"c": -9223372036854775808}}',
    "[" * MAX_DEPTH + "]" * MAX_DEPTH, '"\\u00e9"', "12", "9223372036854775807",
])
def test_ordinary_json_reads_as_the_standard_parser(text):
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text, reason", [
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "deeper"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "deeper"),
    ("[" * 100_000, "deeper"),
    ("9223372036854775808", "64 bits"),
    ("[-9223372036854775809]", "64 bits"),
    ("1" * 5000, "too long"),
    ("1e400", "out of range"),
    ("[NaN]", "not JSON"), ("-Infinity", "not JSON"),
    ('"\\ud800"', "surrogate"), ('{"\\udfff": 1}', "surrogate"), ('[["x", "\\uDBFF"]]', "surrogate"),
    ("{", "Not valid JSON"), ("", "Not valid JSON"),
])
def test_refused(text, reason):
    with pytest.raises(InvalidJson, match=reason):
        loads(text)


def test_bytes_must_be_utf8():
    with pytest.raises(InvalidJson, match="UTF-8"):
        loads(b'"\xff"')
    with pytest.raises(InvalidJson):
        loads('"é"'.encode("utf-16"))


def test_exact_decimals():
    assert loads('{"ht": 1000.10}', exact_decimals=True) == {"ht": Decimal("1000.10")}
    with pytest.raises(InvalidJson):
        loads("[NaN]", exact_decimals=True)


def test_an_invalid_json_is_a_value_error():
    """Callers that catch ValueError, as for json.JSONDecodeError, catch it too."""
    assert issubclass(InvalidJson, ValueError)
