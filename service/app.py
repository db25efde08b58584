"""The Flask application factory: the core of the process, with the JSON API and the auditor's pages on it.

It sits above both edges (`service/http/`, `service/audit/`), which know nothing of each other.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from service.audit.records import records as audit_records
from service.audit.routes import audit
from service.core.runtime import Runtime
from service.http.app import install_api


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service. `config` may set DATABASE_URL, AUTHZ_PRESHARED_KEY, AUTHZ_POLICY and MIGRATE."""
    app = Flask(__name__)
    app.extensions["authz"] = Runtime.build(config)
    install_api(app)
    app.register_blueprint(audit)  # the auditor pages: HTML, not part of the JSON API
    app.register_blueprint(audit_records)  # ... on decisions and access
    return app
