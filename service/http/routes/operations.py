"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document and the policy text."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g

from models.changelog import Who
from models.facts import read_revision
from service.http import schemas
from service.http.declare import endpoint
from service.http.errors import error_body
from service.http.metrics import render_metrics
from service.http.openapi import openapi_document

operations = Blueprint("operations", __name__)


@endpoint(operations, "/healthz", answer=schemas.HealthAnswer, summary="The process is alive")
def healthz() -> dict:
    return {"status": "ok"}


@endpoint(
    operations, "/readyz", answer=schemas.ReadyAnswer, errors=(503,),
    summary="Ready to decide: the database is reachable and the policy is loaded",
)
def readyz():
    runtime = current_app.extensions["authz"]
    try:
        revision = read_revision(runtime.db)
    except Exception as error:  # any failure to read means not ready
        body = error_body("unavailable", f"the database cannot be read: {type(error).__name__}")
        return _json(body, 503)
    return {"status": "ready", "revision": revision, "policy": runtime.policy().sha256}


@operations.get("/metrics")
def metrics() -> Response:
    """Prometheus text format, aggregated over every worker process."""
    payload, content_type = render_metrics()
    return Response(payload, mimetype=None, content_type=content_type)


@operations.get("/openapi.json")
def openapi() -> Response:
    return _json(openapi_document(current_app.extensions["authz"].policy()), 200)


@endpoint(
    operations, "/v1/policy", scope="any", answer=schemas.PolicyAnswer,
    summary="The policy text in force and its sha256",
)
def policy() -> dict:
    runtime = current_app.extensions["authz"]
    runtime.cache.sync()  # follow the change log first: it records the policy in force
    current = runtime.policy()
    return {"sha256": current.sha256, "text": current.text}


def _json(body: dict, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@endpoint(
    operations, "/v1/policy/reload", "POST", scope="admin", body=schemas.EmptyBody, answer=schemas.PolicyReloadAnswer,
    errors=(409,), summary="Load the policy file again; it replaces the one in force only if it passes every scenario",
)
def reload_policy(body: dict):
    """Every worker and host follows within one revision (the new policy is recorded in the change log).

    A policy that does not load or fails a scenario is refused (409) and the policy in force keeps serving.
    """
    result = current_app.extensions["authz"].keeper.reload()
    if not result.loaded:
        return _json(error_body("policy_rejected", result.reason), 409)
    return {"sha256": result.sha256, "revision": result.revision, "reason": result.reason}


@endpoint(
    operations, "/v1/cache/drop", "POST", scope="admin", body=schemas.EmptyBody, answer=schemas.CacheDropAnswer,
    summary="Make every worker drop its cached facts and read them again (after a repair made in the database)",
)
def drop_cached_facts(body: dict) -> dict:
    """Recorded in the change log (kind `cache.drop`): every worker and host follows it within one revision."""
    runtime = current_app.extensions["authz"]
    return {"revision": runtime.store.drop_cached_facts(Who(None, g.caller.key_id))}
