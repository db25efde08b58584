"""What the auditor asks the JSON API (scope `audit`): the decision log and the access review."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from service.core import access_review as access_review_core
from service.core.audit_queries import AccessReviewQuery, DecisionsQuery
from service.http import schemas
from service.http.declare import endpoint

records = Blueprint("records", __name__)


@endpoint(
    records, "/v1/decisions", "GET", scope="audit", query=DecisionsQuery, answer=schemas.DecisionsAnswer,
    summary="The decision log, oldest first: every decision answered and every write refused",
)
def list_decisions(query: dict) -> dict:
    """Filters: actor, account (a resource's account or an Account's id), action, allowed, since (inclusive),
    until (exclusive); pages with `after` (the previous answer's `next_after`) and `limit` (up to 1,000).
    A decision is readable within 2 seconds of its answer."""
    return current_app.extensions["authz"].decision_log.page(**query)


@endpoint(
    records, "/v1/access-review", "GET", scope="audit", query=AccessReviewQuery, answer=schemas.AccessReviewAnswer,
    errors=(404,), summary="Who holds what: everyone on an account (?account=), or a user everywhere (?user=)",
)
def access_review(query: dict):
    """Computed from the policy's answers for the stored facts; for PaymentMethod and Membership, each action
    with the condition it needs ("own payment methods only"). `format=csv` answers text/csv with a header row."""
    runtime = current_app.extensions["authz"]
    runtime.cache.sync()  # follow the log: another process may have taken up a new policy
    policy = runtime.policy()
    if "account" in query:
        review = access_review_core.review_account(runtime.db, policy, query["account"])
        text, name = access_review_core.account_csv, f"access-review-{query['account']}.csv"
    else:
        review = access_review_core.review_user(runtime.db, policy, query["user"])
        text, name = access_review_core.user_csv, f"access-review-{query['user']}.csv"
    if query["format"] == "csv":
        return Response(text(review), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return review
