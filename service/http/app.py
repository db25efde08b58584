"""The JSON API on a Flask app: its blueprints, its one error shape, metrics and request logs.

`service/app.py` builds the app (the core's `Runtime` in `app.extensions["authz"]`)
and installs this edge and the auditor's pages on it.
"""

from __future__ import annotations

from flask import Flask

from service.http.decision_lane import DecisionLane
from service.http.errors import register_error_handlers
from service.http.hooks import install_hooks
from service.http.json_body import MAX_BODY_BYTES
from service.http.routes.decisions import decisions
from service.http.routes.facts import facts
from service.http.routes.operations import operations
from service.http.routes.records import records


def install_api(app: Flask) -> None:
    """Register the v1 endpoints and operations, the error handlers, and the hooks of every request (ids, limits, metrics, logs) on `app`."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1  # one byte over: see declare._json_body
    app.register_blueprint(decisions)
    app.register_blueprint(facts)
    app.register_blueprint(operations)
    app.register_blueprint(records)
    register_error_handlers(app)
    install_hooks(app)
    app.wsgi_app = DecisionLane(app.wsgi_app, app.extensions["authz"])  # plain decisions, answered before Flask
