"""The input rules every edge shares: what an id, a resource, an actor, a check and a consistency are.

The HTTP contract's bodies (`service/http/schemas.py`), the auditor's explain form and
the command-line tool all load their input with these marshmallow fields and schemas,
so an id refused in one place is refused in all. Strict: unknown fields, wrong JSON
types (a string for a boolean, a boolean for a number) and missing attributes are
refused, naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from policies.world import RESOURCE_TYPES
from service.core.consistency import Consistency

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_REVISION = 2**63 - 1  # a revision is a 64-bit integer in the database; a larger one cannot even be compared
# SPEC "Strict input": an id is 1 to 200 of A-Z a-z 0-9 _ - . @ + : =, and neither "." nor "..". Ids sit in
# URL paths and in sentences of the change log: no space, no slash, no look-alike letter, no invisible one.
ID_ALPHABET = "A-Z a-z 0-9 _ - . @ + : ="
ID_RULE = f"1 to {MAX_ID_LENGTH} characters among {ID_ALPHABET}, not '.' or '..'"
# Python's `$` also matches before a final newline: `\Z` is the true end (the class excludes newlines anyway).
_ID_SOURCE = r"(?!\.\.?$)[A-Za-z0-9_.@+:=-]{1,200}\Z"
ID_PATTERN = "^" + _ID_SOURCE[:-2] + "$"  # as the OpenAPI document states it (ECMA)
_ID = re.compile(_ID_SOURCE)
# A name may not hold controls, bidirectional overrides and isolates, or zero-width characters.
_NAME_SOURCE = r"[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]{1,200}\Z"
_NAME = re.compile(_NAME_SOURCE)
NAME_RULE = f"1 to {MAX_NAME_LENGTH} characters without control, bidirectional-override or zero-width characters"
_DIGITS = re.compile(r"[0-9]{1,40}\Z")  # 40: more than any bound here needs, so the range check speaks
PRINTABLE = validate.Regexp(r"[^\x00-\x1f\x7f]+\Z", error="must not contain control characters")


def is_id(value: object) -> bool:
    """Whether `value` is an id of the strict-input grammar (`ID_RULE`)."""
    return type(value) is str and _ID.match(value) is not None


def is_name(value: object) -> bool:
    """Whether `value` is a name a person may read safely (`NAME_RULE`)."""
    return type(value) is str and _NAME.match(value) is not None


def Id(**kwargs: Any) -> fields.String:
    """An identifier such as `acc_1` or `u_42` (`ID_RULE`)."""
    return fields.String(validate=validate.Regexp(_ID_SOURCE, error=f"must be {ID_RULE}"), **kwargs)


def Name(**kwargs: Any) -> fields.String:
    """A display name (`NAME_RULE`): an account's name."""
    return fields.String(validate=validate.Regexp(_NAME_SOURCE, error=f"must be {NAME_RULE}"), **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON `true` and `false`: "yes", 1 or "false" are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictInteger(fields.Integer):
    """Only JSON integers: not booleans, strings or fractions."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class QueryInteger(fields.Integer):
    """An integer in a query string (where every value arrives as text): plain ASCII digits only.

    Python's `int()` also reads `+5`, ` 5 `, `5_0` and `٣` (an Arabic-Indic three); another reader
    of the same URL may not, so none of them is an integer here.
    """

    default_error_messages = {"invalid": "Not a valid integer: plain digits 0-9 only."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or _DIGITS.match(value) is None:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _resource_schema(resource_type: str) -> type[Schema]:
    attributes = {
        name: Id(required=True, metadata={"description": f"the {name} of the {resource_type}"})
        for name in RESOURCE_TYPES[resource_type].attributes
    }
    attributes["type"] = fields.String(required=True, validate=validate.Equal(resource_type))
    return Schema.from_dict(attributes, name=f"{resource_type}Ref")


RESOURCE_SCHEMAS: dict[str, Schema] = {name: _resource_schema(name)() for name in RESOURCE_TYPES}


class ResourceField(fields.Field):
    """A resource named by its `type` and the attributes that type requires."""

    default_error_messages = {
        "invalid": "Not a valid resource: an object with a type.",
        "unknown_type": "Unknown resource type {input!r}; known types: " + ", ".join(RESOURCE_TYPES) + ".",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        resource_type = value.get("type")
        if not isinstance(resource_type, str) or resource_type not in RESOURCE_SCHEMAS:
            raise ValidationError({"type": [self.error_messages["unknown_type"].format(input=resource_type)]})
        return RESOURCE_SCHEMAS[resource_type].load(value)


class ActorSchema(Schema):
    type = fields.String(required=True, validate=validate.Equal("User"))
    id = Id(required=True)


class ConsistencyFields(Schema):
    """`at_least_revision`, loaded as the `consistency` of the request (absent: the latest facts)."""

    at_least_revision = StrictInteger(
        validate=validate.Range(min=0, max=MAX_REVISION),
        metadata={"description": "answer from facts reflecting at least every change up to this revision"},
    )

    @post_load
    def _consistency(self, data: dict, **kwargs: Any) -> dict:
        return with_consistency(data)


class TimeTravelFields(ConsistencyFields):
    as_of_revision = StrictInteger(
        validate=validate.Range(min=0, max=MAX_REVISION),
        metadata={"description": "answer as of this past revision, from facts rebuilt from the change log"},
    )

    @validates_schema
    def _not_both(self, data: dict, **kwargs: Any) -> None:
        if "as_of_revision" in data and "at_least_revision" in data:
            raise ValidationError("give at_least_revision or as_of_revision, not both", "as_of_revision")


class CheckSchema(Schema):
    actor = fields.Nested(ActorSchema, required=True)
    action = fields.String(required=True, validate=[validate.Length(1, 64), PRINTABLE])
    resource = ResourceField(required=True)


def with_consistency(data: dict) -> dict:
    """Replace `at_least_revision` / `as_of_revision`, if given, by the one `consistency` they name."""
    if "at_least_revision" in data or "as_of_revision" in data:
        data["consistency"] = Consistency.of(data.pop("at_least_revision", None), data.pop("as_of_revision", None))
    return data


def describe_validation_error(error: ValidationError) -> str:
    """Name every field marshmallow refused, as `resource.owner: Missing data for required field.`."""
    parts: list[str] = []

    def walk(messages: object, path: list[str]) -> None:
        if isinstance(messages, dict):
            for key, value in messages.items():
                walk(value, [*path, str(key)] if key != "_schema" else path)
        elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
            where = ".".join(path) or "body"
            parts.append(f"{where}: {' '.join(messages)}")
        elif isinstance(messages, list):
            for index, value in enumerate(messages):
                walk(value, [*path, str(index)])
        else:
            parts.append(f"{'.'.join(path) or 'body'}: {messages}")

    walk(error.messages, [])
    return "; ".join(parts) or "the request is not valid"
