"""The "Explain a decision" form of the auditor pages: reading it, validating it, deciding.

The form is a plain set of optional inputs. Its values are validated with the
same marshmallow schemas as `POST /v1/authorize` (an actor, an action, a
resource with the attributes its type requires), and the decision is made by
the same `Authorizer`, with its explanation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from marshmallow import Schema, ValidationError, validate
from werkzeug.datastructures import MultiDict

from models.queries import revision_at
from policies.world import RESOURCE_TYPES
from service.audit.change_log import log_time
from service.audit.words import readable_time
from service.core.audit_queries import Moment
from service.core.authorizer import Authorizer
from service.core.consistency import Consistency
from service.core.inputs import MAX_REVISION, CheckSchema, QueryInteger, describe_validation_error

ATTRIBUTES = ("id", "account", "owner", "user")  # every attribute some resource type requires
# What each type needs, for the form's hint: "PaymentMethod: id, account, owner".
NEEDS = {name: ", ".join(resource.attributes) for name, resource in RESOURCE_TYPES.items()}


class _AsOf(Schema):
    as_of_revision = QueryInteger(validate=validate.Range(min=0, max=MAX_REVISION))


class _AsOfTime(Schema):
    as_of_time = Moment()


@dataclass
class ExplainForm:
    """The form's values as typed (shown again on the page), all optional until submitted."""

    actor: str = ""
    action: str = ""
    type: str = "Account"
    id: str = ""
    account: str = ""
    owner: str = ""
    user: str = ""
    as_of_revision: str = ""
    as_of_time: str = ""
    submitted: bool = False

    @classmethod
    def names(cls) -> list[str]:
        """The form's fields, as the query string names them."""
        return [field.name for field in fields(cls) if field.name != "submitted"]

    @classmethod
    def from_args(cls, args: MultiDict) -> ExplainForm:
        names = cls.names()
        values = {name: args.get(name, "").strip() for name in names if name in args}
        return cls(**values, submitted=bool(values))

    def check(self) -> dict[str, Any]:
        """The decision asked, as `POST /v1/authorize` would receive it; ValidationError if it is not valid."""
        resource: dict[str, str] = {"type": self.type}
        for name in RESOURCE_TYPES[self.type].attributes if self.type in RESOURCE_TYPES else ():
            if getattr(self, name):
                resource[name] = getattr(self, name)
        body: dict[str, Any] = {"actor": {"type": "User"}, "resource": resource}
        if self.actor:
            body["actor"]["id"] = self.actor
        if self.action:
            body["action"] = self.action
        problems: dict[str, Any] = {}
        check: dict[str, Any] = {}
        try:
            check = CheckSchema().load(body)
        except ValidationError as error:
            problems.update(error.normalized_messages())
        if self.as_of_revision:
            try:
                check.update(_AsOf().load({"as_of_revision": self.as_of_revision}))
            except ValidationError as error:
                problems.update(error.normalized_messages())
        if self.as_of_time:
            try:
                check.update(_AsOfTime().load({"as_of_time": self.as_of_time}))
            except ValidationError as error:
                problems.update(error.normalized_messages())
            if self.as_of_revision:
                problems["as_of_time"] = ["give a revision or a date and time, not both"]
        if problems:
            raise ValidationError(problems)
        return check

    def describe(self, error: ValidationError) -> str:
        """The problems, named after the form's fields: `owner: Missing data for required field.`."""
        messages = error.messages if isinstance(error.messages, dict) else {"form": error.messages}
        named: dict[str, Any] = {}
        for name, value in messages.items():
            if name == "actor" and isinstance(value, dict):
                named.update({"actor" if key == "id" else f"actor {key}": text for key, text in value.items()})
            elif name == "resource" and isinstance(value, dict):
                named.update({"resource type" if key == "type" else key: text for key, text in value.items()})
            else:
                named[name.replace("_", " ")] = value
        described = describe_validation_error(ValidationError(named))
        if self.type in NEEDS and any(key in ATTRIBUTES for key in named):
            described += f" (a {self.type} is named by: {NEEDS[self.type]})"
        return described


@dataclass(frozen=True)
class Decision:
    allowed: bool
    revision: int
    policy: str
    as_of: int | None
    explanation: dict[str, Any]
    warnings: tuple[str, ...] = ()
    as_of_time: str | None = None  # asked as of a date and time: the latest revision written by then


def decide(authorizer: Authorizer, form: ExplainForm) -> Decision:
    """Decide and explain the form's question, now or as of its revision."""
    check = form.check()
    as_of, as_of_time = check.get("as_of_revision"), None
    if "as_of_time" in check:
        as_of_time = log_time(check["as_of_time"])
        as_of = revision_at(authorizer.db, as_of_time)
    answer = authorizer.authorize(
        check["actor"]["id"],
        check["action"],
        check["resource"],
        consistency=Consistency.of(as_of_revision=as_of),
        explain=True,
    )
    return Decision(
        answer["allowed"], answer["revision"], answer["policy"], as_of, answer["explanation"],
        tuple(answer.get("warnings", ())), readable_time(as_of_time) if as_of_time else None,
    )
