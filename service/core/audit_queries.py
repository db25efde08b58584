"""The auditor's questions, as every edge takes them (the JSON API, the auditor's pages, the CLI).

The decision log's filters and the access review's subject arrive as text (a query
string, a form, options) and load the same way, so a value refused in one place is
refused in all, naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from service.core.inputs import MAX_REVISION, PRINTABLE, Id, QueryInteger

MAX_DECISIONS_LIMIT = 1_000
DEFAULT_DECISIONS_LIMIT = 100


class TextBoolean(fields.Field):
    """`true` or `false`, as text: nothing else (not 1, yes or True)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value not in ("true", "false"):
            raise ValidationError("must be true or false")
        return value == "true"


class Moment(fields.Field):
    """A date and time in ISO 8601 (`2026-12-01T09:30:00Z`; a date alone is its midnight), UTC when no offset is given."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not value.isascii() or not 10 <= len(value) <= 40:
            raise ValidationError("must be a date and time in ISO 8601, e.g. 2026-12-01T09:30:00Z")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("must be a date and time in ISO 8601, e.g. 2026-12-01T09:30:00Z") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class DecisionsQuery(Schema):
    """`?actor=&account=&action=&allowed=&since=&until=&after=&limit=`: every filter optional."""

    actor = Id(metadata={"description": "the user who asked for (or was refused) something"})
    account = Id(metadata={"description": "a resource's account, or an Account's id"})
    action = fields.String(validate=[validate.Length(1, 64), PRINTABLE])
    allowed = TextBoolean(metadata={"description": "true or false", "type": "string", "enum": ["true", "false"]})
    since = Moment(metadata={"description": "ISO 8601, inclusive", "type": "string", "format": "date-time"})
    until = Moment(metadata={"description": "ISO 8601, exclusive", "type": "string", "format": "date-time"})
    after = QueryInteger(
        load_default=0, validate=validate.Range(min=0, max=MAX_REVISION),
        metadata={"description": "the next_after of the previous page (0: from the oldest)"},
    )
    limit = QueryInteger(
        load_default=DEFAULT_DECISIONS_LIMIT, validate=validate.Range(1, MAX_DECISIONS_LIMIT),
    )

    @validates_schema
    def _since_before_until(self, data: dict, **kwargs: Any) -> None:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ValidationError("must be later than since", "until")


class AccessReviewQuery(Schema):
    """`?account=` or `?user=` (exactly one), and `format=json` (default) or `csv`."""

    account = Id(metadata={"description": "everyone who holds anything on this account, and what"})
    user = Id(metadata={"description": "every account this user is a member of, with the role and what it grants"})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))

    @validates_schema
    def _one_subject(self, data: dict, **kwargs: Any) -> None:
        if ("account" in data) == ("user" in data):
            raise ValidationError("give either account or user", "account")
