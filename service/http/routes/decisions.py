"""Decision endpoints (scope `check`): authorize, authorize in batch, list actions, list accounts.

A body's `at_least_revision` / `as_of_revision` arrive loaded as one `consistency` (absent: the latest facts).
Every answer is handed to the decision log (`service/core/decision_log.py`), which only buffers it here.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g

from service.core.consistency import LATEST
from service.core.decision_log import Asker
from service.core.runtime import Runtime
from service.http import quick_bodies, schemas
from service.http.declare import endpoint
from service.http.metrics import record_decisions

decisions = Blueprint("decisions", __name__)


def _authorizer():
    return current_app.extensions["authz"].authorizer


def _decision_log():
    return current_app.extensions["authz"].decision_log


def _asker(endpoint: str) -> Asker:
    return Asker(g.get("request_id"), g.caller.name, endpoint)


@endpoint(
    decisions, "/v1/authorize", "POST", scope="check", body=schemas.AuthorizeRequest, answer=schemas.AuthorizeAnswer,
    summary="May this actor do this action on this resource?", quick_body=quick_bodies.authorize_body,
)
def authorize(body: dict) -> dict:
    """Answers `allowed` and the revision of the facts it reflects; with `explain: true`, also why.

    With `as_of_revision: N`, answers as of revision N: facts rebuilt from the change log, and the
    policy that was in force then.
    """
    return answer_authorize(current_app.extensions["authz"], _asker("/v1/authorize"), body)


def answer_authorize(runtime: Runtime, asker: Asker, body: dict) -> dict:
    """The answer of `POST /v1/authorize` to a loaded body, counted and handed to the decision log.

    The view above and the decision lane (`service/http/decision_lane.py`) both answer through here.
    """
    answer = runtime.authorizer.authorize(
        body["actor"]["id"], body["action"], body["resource"],
        consistency=body.get("consistency", LATEST), explain=body["explain"],
    )
    record_decisions(answer["revision"], [answer["allowed"]])
    runtime.decision_log.decision(
        asker, body["actor"]["id"], body["action"], body["resource"], answer["allowed"],
        revision=answer["revision"], policy=answer["policy"],
    )
    return answer


@endpoint(
    decisions, "/v1/authorize/batch", "POST", scope="check", body=schemas.BatchRequest, answer=schemas.BatchAnswer,
    summary="Up to 1,000 decisions at once, answered in order", quick_body=quick_bodies.batch_body,
)
def authorize_batch(body: dict) -> dict:
    """Every check is decided on the same revision of the facts."""
    answer = _authorizer().authorize_batch(body["checks"], consistency=body.get("consistency", LATEST))
    outcomes = [result["allowed"] for result in answer["results"]]
    record_decisions(answer["revision"], outcomes)
    _decision_log().decisions(
        _asker("/v1/authorize/batch"), body["checks"], outcomes, revision=answer["revision"], policy=answer["policy"]
    )
    return answer


@endpoint(
    decisions, "/v1/actions", "POST", scope="check", body=schemas.ActionsRequest, answer=schemas.ActionsAnswer,
    summary="Every action this actor may do on this resource, sorted",
)
def actions(body: dict) -> dict:
    """The decision log records one decision per action of the resource's type, granted or not."""
    authorizer = _authorizer()
    answer = authorizer.actions(body["actor"]["id"], body["resource"], consistency=body.get("consistency", LATEST))
    _decision_log().actions(
        _asker("/v1/actions"), body["actor"]["id"], body["resource"], answer["actions"],
        authorizer.policy().actions.get(body["resource"]["type"], ()), revision=answer["revision"],
        policy=answer["policy"],
    )
    return answer


@endpoint(
    decisions, "/v1/list", "POST", scope="check", body=schemas.ListRequest, answer=schemas.ListAnswer,
    summary="The ids of every resource of a type on which this actor may do this action, sorted",
)
def list_resources(body: dict) -> dict:
    """Complete, never truncated; with `page_size`, paged with `page_token` / `next_page_token`.

    Only accounts are stored by this service (the calling services own the other records), so
    `resource_type` must be `Account`.
    The decision log records the request (resource: its type), allowed when the list is not empty.
    """
    answer = _authorizer().list_accounts(
        body["actor"]["id"], body["action"], page_size=body.get("page_size"), page_token=body.get("page_token"),
        consistency=body.get("consistency", LATEST),
    )
    _decision_log().decision(
        _asker("/v1/list"), body["actor"]["id"], body["action"], {"type": body["resource_type"]}, bool(answer["ids"]),
        revision=answer["revision"], policy=answer["policy"],
    )
    return answer
