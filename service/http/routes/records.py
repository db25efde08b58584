"""What the auditor asks the JSON API (scope `audit`): the decision log and the access review."""

from __future__ import annotations

from flask import Blueprint, current_app

from service.core.decision_query import DecisionsQuery
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
