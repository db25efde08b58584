"""Fact endpoints (scope `write`): accounts, billing settings, members, support agents, the change log.

A change carrying `acting_user` is authorized for that person with the same
policy as any decision (403 when they lack the permission); without it, it is
a trusted system change. A write made for a person takes `acting_user` in the
body or in the query string (the same in both if given twice); the endpoints
where no person acts (sign-up, support agents) refuse it as an unknown field.
Every successful write answers the new `revision`. A write refused with 403 or 409 is recorded in
the decision log (not allowed, with its error code), by `_refusal_recorded`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, current_app, g

from models.changelog import Who
from models.errors import DATABASE_ERRORS
from models.facts import read_revision
from service.core.decision_log import Asker
from service.core.errors import ANSWERED
from service.http import schemas
from service.http.declare import endpoint
from service.http.errors import ApiError, status_of

facts = Blueprint("facts", __name__)


def _store():
    return current_app.extensions["authz"].store


def _who(body: dict | None = None, query: dict | None = None) -> Who:
    """Who a write is made for: `acting_user` of the body or of the query string; neither: a trusted system change.

    Given in both, they must name the same person: neither silently wins over the other
    (each write once read only one place, so a reader named in the other went unchecked).
    """
    in_body = (body or {}).get("acting_user")
    in_query = (query or {}).get("acting_user")
    if in_body is not None and in_query is not None and in_body != in_query:
        raise ApiError(
            400, "acting_user_conflict",
            "acting_user: the body and the query string name different people; give it once, or the same in both",
        )
    return Who(in_body if in_body is not None else in_query, g.caller.key_id)


@contextmanager
def _refusal_recorded(endpoint_rule: str, who: Who, action: str, resource: dict) -> Iterator[None]:
    """Record the write in the decision log if it is refused with 403 (forbidden) or 409 (an invariant).

    Its revision is the latest when it was refused (the write changed nothing).
    """
    try:
        yield
    except ANSWERED as error:
        if status_of(error) in (403, 409):
            runtime = current_app.extensions["authz"]
            runtime.decision_log.refused_write(
                Asker(g.get("request_id"), g.caller.name, endpoint_rule), who.acting_user, action, resource,
                error.code, revision=_latest_revision(runtime), policy=runtime.policy().sha256,
            )
        raise


def _latest_revision(runtime) -> int | None:
    try:
        return read_revision(runtime.db)
    except DATABASE_ERRORS:  # the refusal stands; its record says the revision is unknown
        return None


def _membership(account_id: str, user: str) -> dict:
    return {"type": "Membership", "account": account_id, "user": user}


def _with_revision(written) -> dict:
    return {**written.document, "revision": written.revision}


@endpoint(
    facts, "/v1/accounts", "POST", scope="write", body=schemas.AccountCreate, answer=schemas.AccountAnswer,
    status=201, errors=(409,), summary="Sign-up: create an account with its first admin",
)
def create_account(body: dict) -> dict:
    who = _who()
    with _refusal_recorded("/v1/accounts", who, "create", {"type": "Account", "id": body["id"]}):
        return _with_revision(_store().create_account(body["id"], body["name"], body["admin"], who))


@endpoint(
    facts, "/v1/accounts/<account_id>", "GET", scope="write", query=schemas.ActingUserQuery,
    answer=schemas.AccountAnswer, errors=(404,), summary="An account, its billing settings and its members",
)
def get_account(account_id: str, query: dict) -> dict:
    """With `?acting_user=`, that person must be allowed to `read` the account."""
    return _with_revision(_store().account(account_id, acting_user=query.get("acting_user")))


@endpoint(
    facts, "/v1/accounts/<account_id>/billing-settings", "GET", scope="write", query=schemas.ActingUserQuery,
    answer=schemas.BillingSettingsAnswer, errors=(404,), summary="An account's billing settings and warnings",
)
def get_billing_settings(account_id: str, query: dict) -> dict:
    """With `?acting_user=`, that person must be allowed to `view_subscription`."""
    return _with_revision(_store().billing_settings(account_id, acting_user=query.get("acting_user")))


@endpoint(
    facts, "/v1/accounts/<account_id>/billing-settings", "PATCH", scope="write", body=schemas.BillingSettingsPatch,
    query=schemas.ActingUserQuery, answer=schemas.BillingSettingsAnswer, errors=(404, 409),
    summary="Change an account's billing settings",
)
def patch_billing_settings(account_id: str, body: dict, query: dict) -> dict:
    """Needs `manage_billing_settings`. Restricting without a payment manager is refused (409)."""
    who = _who(body, query)
    rule, resource = "/v1/accounts/<account_id>/billing-settings", {"type": "Account", "id": account_id}
    with _refusal_recorded(rule, who, "manage_billing_settings", resource):
        return _with_revision(_store().update_billing_settings(account_id, body, who))


@endpoint(
    facts, "/v1/accounts/<account_id>/members", "GET", scope="write", query=schemas.ActingUserQuery,
    answer=schemas.MembersAnswer, errors=(404,), summary="An account's members and their roles",
)
def list_members(account_id: str, query: dict) -> dict:
    """With `?acting_user=`, that person must be allowed to `view_members`."""
    return _with_revision(_store().members(account_id, acting_user=query.get("acting_user")))


@endpoint(
    facts, "/v1/accounts/<account_id>/members", "POST", scope="write", body=schemas.MemberCreate,
    query=schemas.ActingUserQuery, answer=schemas.MemberAnswer, status=201, errors=(404, 409),
    summary="Invite a member with a role",
)
def invite_member(account_id: str, body: dict, query: dict) -> dict:
    """Needs `manage_members`. A second invitation of the same user, or a second payment manager, is refused (409)."""
    who = _who(body, query)
    with _refusal_recorded("/v1/accounts/<account_id>/members", who, "invite", _membership(account_id, body["user"])):
        return _with_revision(_store().invite(account_id, body["user"], body["role"], who))


@endpoint(
    facts, "/v1/accounts/<account_id>/members/<user>", "PATCH", scope="write", body=schemas.MemberPatch,
    query=schemas.ActingUserQuery, answer=schemas.MemberAnswer, errors=(404, 409), summary="Change a member's role",
)
def change_member_role(account_id: str, user: str, body: dict, query: dict) -> dict:
    """Needs `change_role` on the membership. Invariants 1, 3 and 4 apply (409)."""
    who = _who(body, query)
    with _refusal_recorded("/v1/accounts/<account_id>/members/<user>", who, "change_role", _membership(account_id, user)):
        return _with_revision(_store().change_role(account_id, user, body["role"], who))


@endpoint(
    facts, "/v1/accounts/<account_id>/members/<user>", "DELETE", scope="write", body=schemas.MemberRemove,
    query=schemas.ActingUserQuery, answer=schemas.MemberAnswer, errors=(404, 409), summary="Remove a member",
)
def remove_member(account_id: str, user: str, body: dict, query: dict) -> dict:
    """Needs `remove` on the membership. Invariants 1 and 3 apply (409). The body may be left out."""
    who = _who(body, query)
    with _refusal_recorded("/v1/accounts/<account_id>/members/<user>", who, "remove", _membership(account_id, user)):
        return _with_revision(_store().remove_member(account_id, user, who))


@endpoint(
    facts, "/v1/support-agents/<user>", "PUT", scope="write", body=schemas.EmptyBody, answer=schemas.SupportAgentAnswer,
    summary="Make a user a support agent (customer service); idempotent",
)
def put_support_agent(user: str, body: dict) -> dict:
    """A trusted system change (support tools): no body, or an empty object; no `acting_user`."""
    written, _changed = _store().add_support_agent(user, _who())
    return _with_revision(written)


@endpoint(
    facts, "/v1/support-agents/<user>", "DELETE", scope="write", body=schemas.EmptyBody,
    answer=schemas.SupportAgentAnswer, errors=(404,), summary="Remove a user's support-agent role",
)
def delete_support_agent(user: str, body: dict) -> dict:
    """A trusted system change (support tools): no body, or an empty object; no `acting_user`."""
    return _with_revision(_store().remove_support_agent(user, _who()))


@endpoint(
    facts, "/v1/changes", "GET", scope=("write", "audit"), query=schemas.ChangesQuery, answer=schemas.ChangesAnswer,
    summary="The change log, oldest first: who changed what, when, before and after",
)
def list_changes(query: dict) -> dict:
    """`after` is a revision (0: from the start); `account` keeps only that account's entries."""
    entries, revision = _store().changes(account=query.get("account"), after=query["after"], limit=query["limit"])
    next_after = entries[-1]["revision"] if len(entries) == query["limit"] else None
    return {"changes": entries, "next_after": next_after, "revision": revision}


@endpoint(
    facts, "/v1/changes/verify", "GET", scope=("write", "audit"), answer=schemas.VerificationAnswer,
    summary="Check the change log's hash chain: the first entry edited, deleted or reordered",
)
def verify_changes() -> dict:
    """Bounded work: a long log is served from the last verification and the tail since (see service/core/records.py)."""
    status = current_app.extensions["authz"].records.status()
    result = status.verification
    return {
        "ok": result.ok,
        "entries": result.entries,
        "revision": result.revision,
        "first_bad_revision": result.first_bad_revision,
        "problem": result.problem,
        "drift": list(result.drift),
        "drift_count": result.drift_count,
        "head": {"revision": status.head.revision, "sha256": status.head.sha256},
        "unchecked": status.unchecked,
        "compared_at": status.compared_at,
        "compared_revision": status.compared_revision,
    }
