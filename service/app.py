"""The Flask application factory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from flask import Flask

from models.db import Database
from models.facts import FactCache
from models.store import Store
from policies.engine import PolicyInForce, load_policy, policy_path
from service.auth import KeyRing
from service.authorizer import Authorizer
from service.declare import MAX_BODY_BYTES
from service.errors import register_error_handlers
from service.logs import request_logging
from service.metrics import instrument
from service.policy_keeper import PolicyKeeper
from service.routes.audit import audit
from service.routes.decisions import decisions
from service.routes.facts import facts
from service.routes.operations import operations


@dataclass
class Runtime:
    """Everything a request needs, built once per process."""

    db: Database
    policy: PolicyInForce
    cache: FactCache
    store: Store
    authorizer: Authorizer
    keys: KeyRing
    keeper: PolicyKeeper

    @classmethod
    def build(cls, config: dict[str, Any] | None = None) -> Runtime:
        """Open the database (migrating it unless MIGRATE is false), load the policy, wire the parts.

        ADOPT_POLICY_FILE (the service: true) makes the policy file the policy in
        force if it is new and passes the scenarios; otherwise (the command-line
        tool) the process decides with the policy the change log records.
        """
        config = dict(config or {})
        db = Database(config.get("DATABASE_URL") or os.environ.get("DATABASE_URL"))
        if config.get("MIGRATE", True):
            db.migrate()
        path = config.get("AUTHZ_POLICY") or os.environ.get("AUTHZ_POLICY") or policy_path()
        policy = PolicyInForce(load_policy(path))
        cache = FactCache(db)
        store = Store(db, policy, on_commit=cache.note_written)
        keeper = PolicyKeeper(db, store, policy, path)
        cache.on_policy_change = keeper.follow
        if config.get("ADOPT_POLICY_FILE", True):
            keeper.adopt_file()
        else:
            keeper.follow()
        preshared = config.get("AUTHZ_PRESHARED_KEY", os.environ.get("AUTHZ_PRESHARED_KEY"))
        return cls(
            db=db,
            policy=policy,
            cache=cache,
            store=store,
            authorizer=Authorizer(db, cache, policy, keeper),
            keys=KeyRing(cache, preshared),
            keeper=keeper,
        )

    def after_fork(self) -> None:
        """In a freshly forked worker: forget the parent's connections (they stay the parent's)."""
        self.db.dispose(close=False)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service. `config` may set DATABASE_URL, AUTHZ_PRESHARED_KEY, AUTHZ_POLICY and MIGRATE."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1  # see declare._json_body
    app.extensions["authz"] = Runtime.build(config)

    app.register_blueprint(decisions)
    app.register_blueprint(facts)
    app.register_blueprint(operations)
    app.register_blueprint(audit)  # the auditor pages: HTML, not part of the JSON API
    register_error_handlers(app)
    instrument(app)
    request_logging(app)
    return app
