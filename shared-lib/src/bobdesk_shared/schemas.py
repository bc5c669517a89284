"""Marshmallow pieces every API needs: JSON fields with no type coercion.

marshmallow's Boolean takes "yes", 1 or "on"; a JSON API must answer 400 to a
wrong type instead, so bodies use `JsonBoolean`. Schemas refuse unknown fields
(marshmallow's default RAISE, kept explicit).
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class JsonBoolean(ma.fields.Boolean):
    default_error_messages = {"invalid": "Not a boolean (true or false)."}

    def _deserialize(self, value, attr, data, **kwargs):
        # `1 in {True}` holds in Python, so the check is on the type itself.
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class JsonInteger(ma.fields.Integer):
    """A JSON integer: no string ("12"), float (1.5) or boolean (true is an int in Python)."""

    default_error_messages = {"invalid": "Not an integer."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class WholeMatch(validate.Regexp):
    """The whole value matches `pattern`, documented as the OpenAPI `pattern` anchored at both ends
    (JSON Schema's `pattern` finds a match anywhere; Python's `$` also matches before a final
    newline, hence `fullmatch`): a client and the server agree on every value."""

    def __init__(self, pattern: str, error: str | None = None):
        super().__init__(f"^(?:{pattern})$", error=error)

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value
