"""Every request body, query string and answer of the v1 HTTP contract, as marshmallow schemas.

They are built from the input rules every edge shares (`service/core/inputs.py`: ids,
resources, checks, consistency). Bodies are strict: unknown fields, wrong JSON types (a string for a boolean, a
boolean for a number) and missing attributes are refused with a 400 that names
the field. The same schemas produce `/openapi.json`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from policies.world import ROLES
from service.core.inputs import (
    MAX_REVISION,
    PRINTABLE,
    ActorSchema,
    CheckSchema,
    ConsistencyFields,
    Id,
    Name,
    QueryInteger,
    ResourceField,
    StrictBoolean,
    StrictInteger,
    TimeTravelFields,
)

MAX_BATCH = 1000
MAX_PAGE_SIZE = 10_000
MAX_CHANGES_LIMIT = 10_000


class AuthorizeRequest(CheckSchema, TimeTravelFields):
    explain = StrictBoolean(load_default=False)


class BatchRequest(ConsistencyFields):
    checks = fields.List(
        fields.Nested(CheckSchema), required=True, validate=validate.Length(max=MAX_BATCH)
    )


class ActionsRequest(TimeTravelFields):
    actor = fields.Nested(ActorSchema, required=True)
    resource = ResourceField(required=True)


class ListRequest(ConsistencyFields):
    actor = fields.Nested(ActorSchema, required=True)
    action = fields.String(required=True, validate=[validate.Length(1, 64), PRINTABLE])
    # Only accounts are stored here; the calling services own the other records.
    resource_type = fields.String(required=True, validate=validate.OneOf(["Account"]))
    page_size = StrictInteger(validate=validate.Range(1, MAX_PAGE_SIZE))
    page_token = fields.String(
        validate=validate.Length(1, 1000),
        metadata={"description": "opaque: the next_page_token of the previous answer, as it was given"},
    )


class ExplanationSchema(Schema):
    summary = fields.String(required=True)
    facts = fields.List(fields.String(), required=True)
    rules = fields.List(fields.Dict(), required=True)
    would_be_allowed_if = fields.List(fields.String(), required=True)
    would_be_denied_if = fields.List(fields.String(), required=True)


class AuthorizeAnswer(Schema):
    allowed = fields.Boolean(required=True)
    revision = fields.Integer(required=True)
    policy = fields.String(required=True, metadata={"description": "sha256 of the policy that decided"})
    explanation = fields.Nested(ExplanationSchema)
    warnings = fields.List(
        fields.String(),
        metadata={"description": "with an explanation or as_of_revision: the records it rests on found altered, "
                  "an account that does not exist; absent otherwise"},
    )


class BatchResult(Schema):
    allowed = fields.Boolean(required=True)


class BatchAnswer(Schema):
    results = fields.List(fields.Nested(BatchResult), required=True)
    revision = fields.Integer(required=True)
    policy = fields.String(required=True)


class ActionsAnswer(Schema):
    actions = fields.List(fields.String(), required=True)
    revision = fields.Integer(required=True)
    policy = fields.String(required=True)
    warnings = fields.List(
        fields.String(),
        metadata={"description": "with an explanation or as_of_revision: the records it rests on found altered, "
                  "an account that does not exist; absent otherwise"},
    )


class ListAnswer(Schema):
    ids = fields.List(fields.String(), required=True)
    next_page_token = fields.String(required=True, allow_none=True)
    revision = fields.Integer(required=True)
    policy = fields.String(required=True)


# -- facts ------------------------------------------------------------------


class ActingUserFields(Schema):
    acting_user = Id(metadata={"description": "the person the change is made for; absent: a trusted system change"})


class ActingUserQuery(Schema):
    """`?acting_user=`: on a read, who must be allowed to see it; on a write, as in the body."""

    acting_user = Id(
        metadata={
            "description": "the person the request is made for (absent: a trusted system request); on a write, "
            "it may be given here or as acting_user in the body, and given in both it must be the same"
        }
    )


class EmptyQuery(Schema):
    """No query parameter: an endpoint declared without a query schema refuses any."""


class AccountCreate(Schema):
    id = Id(required=True)
    name = Name(required=True)
    admin = Id(required=True)


class BillingSettings(Schema):
    restrict_subscription_to_payment_manager = StrictBoolean(required=True)
    auto_add_subscription_invoices_to_purchases = StrictBoolean(required=True)


class MemberSchema(Schema):
    user = fields.String(required=True)
    role = fields.String(required=True)


class AccountAnswer(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    billing_settings = fields.Nested(BillingSettings, required=True)
    members = fields.List(fields.Nested(MemberSchema), required=True)
    revision = fields.Integer(required=True)


class BillingSettingsPatch(ActingUserFields):
    restrict_subscription_to_payment_manager = StrictBoolean()
    auto_add_subscription_invoices_to_purchases = StrictBoolean()

    @validates_schema
    def _one_setting(self, data: dict, **kwargs: Any) -> None:
        if not set(data) - {"acting_user"}:
            raise ValidationError(
                "give restrict_subscription_to_payment_manager, auto_add_subscription_invoices_to_purchases or both"
            )


class BillingSettingsAnswer(BillingSettings):
    account = fields.String(required=True)
    warnings = fields.List(fields.String(), required=True)
    revision = fields.Integer(required=True)


class MemberCreate(ActingUserFields):
    user = Id(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class MemberPatch(ActingUserFields):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class MemberRemove(ActingUserFields):
    """The optional body of removing a member: `acting_user`, or nothing."""


class MemberAnswer(Schema):
    account = fields.String(required=True)
    user = fields.String(required=True)
    role = fields.String(required=True, allow_none=True, metadata={"description": "null once removed"})
    revision = fields.Integer(required=True)


class MembersAnswer(Schema):
    account = fields.String(required=True)
    members = fields.List(fields.Nested(MemberSchema), required=True)
    revision = fields.Integer(required=True)


class SupportAgentAnswer(Schema):
    user = fields.String(required=True)
    support_agent = fields.Boolean(required=True)
    revision = fields.Integer(required=True)


class EmptyBody(Schema):
    pass


class ChangesQuery(Schema):
    account = Id()
    after = QueryInteger(load_default=0, validate=validate.Range(min=0, max=MAX_REVISION))
    limit = QueryInteger(load_default=1000, validate=validate.Range(1, MAX_CHANGES_LIMIT))


class ChangeSchema(Schema):
    revision = fields.Integer(required=True)
    at = fields.String(required=True)
    kind = fields.String(required=True)
    account = fields.String(required=True, allow_none=True)
    user = fields.String(required=True, allow_none=True)
    acting_user = fields.String(required=True, allow_none=True)
    api_key = fields.String(required=True, allow_none=True)
    before = fields.Dict(required=True)
    after = fields.Dict(required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)


class ChangesAnswer(Schema):
    changes = fields.List(fields.Nested(ChangeSchema), required=True)
    next_after = fields.Integer(
        required=True, allow_none=True, metadata={"description": "pass as `after` for the next entries; null when none"}
    )
    revision = fields.Integer(required=True)


class HeadAnswer(Schema):
    revision = fields.Integer(required=True)
    sha256 = fields.String(required=True)


class VerificationAnswer(Schema):
    ok = fields.Boolean(required=True)
    entries = fields.Integer(required=True)
    revision = fields.Integer(required=True)
    first_bad_revision = fields.Integer(required=True, allow_none=True)
    problem = fields.String(required=True, allow_none=True)
    drift = fields.List(
        fields.String(), required=True, metadata={"description": "where the fact tables differ from the log"}
    )
    drift_count = fields.Integer(
        required=True, metadata={"description": "how many differences were found (`drift` shows the first ones)"}
    )
    head = fields.Nested(HeadAnswer, required=True, metadata={"description": "the latest entry of the log"})
    unchecked = fields.Integer(
        required=True, metadata={"description": "entries past `revision` not verified yet (a long tail: ask again)"}
    )
    compared_at = fields.String(
        required=True, allow_none=True,
        metadata={"description": "when the fact tables were last compared with the log (`authz changes verify`)"},
    )
    compared_revision = fields.Integer(required=True, allow_none=True)


# -- operations -------------------------------------------------------------


class HealthAnswer(Schema):
    status = fields.String(required=True)


class ReadyAnswer(Schema):
    status = fields.String(required=True)
    revision = fields.Integer()
    policy = fields.String()
    reason = fields.String()


class PolicyAnswer(Schema):
    sha256 = fields.String(required=True)
    text = fields.String(required=True)


class CacheDropAnswer(Schema):
    revision = fields.Integer(required=True, metadata={"description": "the change-log entry every worker follows"})


class PolicyReloadAnswer(Schema):
    sha256 = fields.String(required=True)
    revision = fields.Integer(required=True, allow_none=True, metadata={"description": "null: already in force"})
    reason = fields.String(required=True)


class ErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)


class ErrorAnswer(Schema):
    error = fields.Nested(ErrorDetail, required=True)


# -- the decision log ---------------------------------------------------------


class DecisionSchema(Schema):
    id = fields.Integer(required=True, metadata={"description": "the order it was recorded in"})
    time = fields.String(required=True, metadata={"description": "when it was answered, ISO 8601 UTC"})
    request_id = fields.String(required=True, allow_none=True)
    api_key = fields.String(required=True, allow_none=True, metadata={"description": "the calling key's name"})
    endpoint = fields.String(required=True)
    actor = fields.String(required=True, allow_none=True, metadata={"description": "null: a system change refused"})
    action = fields.String(required=True, allow_none=True)
    resource = fields.Dict(required=True, metadata={"description": "as sent (for /v1/list: its type)"})
    account = fields.String(required=True, allow_none=True)
    allowed = fields.Boolean(required=True, metadata={"description": "false for a refused write"})
    code = fields.String(required=True, allow_none=True, metadata={"description": "a refused write's error code"})
    revision = fields.Integer(required=True, allow_none=True)
    policy = fields.String(required=True, allow_none=True, metadata={"description": "sha256 of the policy"})


class DecisionsAnswer(Schema):
    decisions = fields.List(fields.Nested(DecisionSchema), required=True)
    next_after = fields.Integer(
        required=True, allow_none=True, metadata={"description": "pass as `after` for the next page; null when none"}
    )


# -- the access review --------------------------------------------------------

_ACTIONS_DESCRIPTION = (
    "by resource type: action names; for PaymentMethod and Membership, {action, condition} objects "
    '(e.g. "own payment methods only")'
)


class AccessReviewSubject(Schema):
    user = fields.String(required=True)
    role = fields.String(required=True, allow_none=True, metadata={"description": "null: a support agent, not a member"})
    support_agent = fields.Boolean(required=True)
    actions = fields.Dict(required=True, metadata={"description": _ACTIONS_DESCRIPTION})


class AccessReviewAccount(Schema):
    account = fields.String(required=True)
    role = fields.String(required=True)
    actions = fields.Dict(required=True, metadata={"description": _ACTIONS_DESCRIPTION})


class AccessReviewAnswer(Schema):
    """?account=: account and subjects; ?user=: user, support_agent, accounts (and on_every_account for support)."""

    also_text_csv = True  # with `format=csv`

    account = fields.String()
    user = fields.String()
    revision = fields.Integer(required=True)
    policy = fields.String(required=True)
    subjects = fields.List(fields.Nested(AccessReviewSubject))
    support_agent = fields.Boolean()
    accounts = fields.List(fields.Nested(AccessReviewAccount))
    on_every_account = fields.Dict(metadata={"description": "a support agent's holdings on any account"})
