"""JSON from outside (request bodies, provider payloads), parsed within bounds.

The standard parser alone turns hostile input into a 500 or into data MongoDB refuses
later: nesting 1,000 deep raises RecursionError, a 5,000-digit number ValueError,
`NaN` and `1e999` become floats no JSON can render, an integer past 64 bits cannot be
stored, and a lone `\\ud800` escape makes a string that cannot be encoded. `loads`
refuses each of these with `InvalidJson` (a `ValueError`, as `json.JSONDecodeError`
is), whose message says what is wrong and never repeats the input.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

# Deeper than any document we exchange (a provider invoice nests about five levels) and far
# below both the parser's recursion limit and MongoDB's 100 levels.
MAX_DEPTH = 32
_INT64 = range(-(1 << 63), 1 << 63)
# A `\uD800`..`\uDFFF` escape: the only way JSON text makes a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidJson(ValueError):
    """The text is not JSON we accept; the message says why."""


def _int64(text: str) -> int:
    value = int(text)  # ValueError past 4,300 digits, reported as InvalidJson below
    if value not in _INT64:
        raise InvalidJson("An integer does not fit in 64 bits.")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson("A number is out of range.")
    return value


def _finite_decimal(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise InvalidJson("A number is out of range.")
    return value


def _no_constant(name: str):
    raise InvalidJson(f"{name} is not JSON.")


def _check_shape(value, max_depth: int, check_strings: bool) -> None:
    """Breadth first, one level of containers at a time: no recursion on hostile depth."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > max_depth:
            raise InvalidJson(f"The JSON nests deeper than {max_depth} levels.")
        deeper = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            if check_strings:
                texts = [*item, *children] if isinstance(item, dict) else children
                for text in texts:
                    if isinstance(text, str) and not text.isascii():
                        _encodable(text)
            deeper.extend(child for child in children if isinstance(child, (dict, list)))
        level = deeper


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("A string holds an unpaired surrogate escape.") from None


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, exact_decimals: bool = False):
    """The JSON value of `data` (UTF-8 when bytes); `InvalidJson` when it is not one we accept.

    `exact_decimals` reads fractional numbers as `Decimal` (amounts), otherwise as float."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError:
        raise InvalidJson("The body is not UTF-8.") from None
    try:
        value = json.loads(text, parse_int=_int64, parse_constant=_no_constant,
                           parse_float=_finite_decimal if exact_decimals else _finite_float)
    except InvalidJson:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise InvalidJson(f"The JSON nests deeper than {max_depth} levels.") from None
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        raise InvalidJson("A number is too long.") from None
    if isinstance(value, (dict, list)):
        _check_shape(value, max_depth, check_strings=_SURROGATE_ESCAPE.search(text) is not None)
    elif isinstance(value, str) and _SURROGATE_ESCAPE.search(text):
        _encodable(value)
    return value
