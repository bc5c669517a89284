"""The fast Decimal128 conversions give exactly what pymongo's `decimal.Decimal` path gives."""

from __future__ import annotations

import random

import pytest
from bson import Decimal128
from invoices_service.amounts import decimal128, json_number


def exact_texts(count: int):
    rng = random.Random(20261201)
    for _ in range(count):
        whole = str(rng.randrange(10 ** rng.randint(1, 18)))
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 10)))
        yield ("-" if rng.random() < 0.3 else "") + whole + (f".{fraction}" if fraction else "")


def test_same_encoding_and_rendering_as_pymongo():
    # Two decimals take a path of their own while the coefficient fits 64 bits (2**64 - 1 cents, then one more).
    cents = ["0.00", "0.05", "0.50", "7.13", "184467440737095516.15", "184467440737095516.16"]
    for text in ["0", "-0", "0.10", "-0.00", "999999999999999999.9999999999", "1.0000000001", "12345678901234.56",
                 *cents, *exact_texts(20_000)]:
        stored = decimal128(text)
        assert stored.bid == Decimal128(text).bid, text
        assert json_number(stored) == format(Decimal128(text).to_decimal(), "f") == text


@pytest.mark.parametrize("text", ["1E+3", "-1.5E+2", "1E-7", "0E-20", "123456789012345678901234567890123E-5",
                                  "9.999999999999999999999999999999999E+6144", "NaN", "-Infinity"])
def test_any_stored_decimal_renders_as_pymongo_would(text):
    value = Decimal128(text)
    assert json_number(value) == format(value.to_decimal(), "f")


@pytest.mark.parametrize("text", ["1e3", "+1", "1.", ".5", "1234567890123456789", "1.12345678901", " 1", "NaN"])
def test_only_exact_decimal_text_is_taken(text):
    with pytest.raises(ValueError, match="not an exact decimal"):
        decimal128(text)


def test_other_decimal_digits_the_contract_lets_through_are_stored_as_pymongo_stores_them():
    text = "\u0661\u0662.\u0665"  # Arabic-Indic 12.5
    assert decimal128(text).bid == Decimal128(text).bid
    assert json_number(decimal128(text)) == "12.5"
