"""The Flask application factory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from flask import Flask

from models.db import Database
from models.facts import FactCache
from models.store import Store
from policies.engine import PolicyInForce, load_policy
from service.auth import KeyRing
from service.authorizer import Authorizer
from service.declare import MAX_BODY_BYTES
from service.errors import register_error_handlers
from service.metrics import instrument


@dataclass
class Runtime:
    """Everything a request needs, built once per process."""

    db: Database
    policy: PolicyInForce
    cache: FactCache
    store: Store
    authorizer: Authorizer
    keys: KeyRing

    @classmethod
    def build(cls, config: dict[str, Any] | None = None) -> Runtime:
        """Open the database (migrating it unless MIGRATE is false), load the policy, wire the parts."""
        config = dict(config or {})
        db = Database(config.get("DATABASE_URL") or os.environ.get("DATABASE_URL"))
        if config.get("MIGRATE", True):
            db.migrate()
        policy = PolicyInForce(load_policy(config.get("AUTHZ_POLICY") or os.environ.get("AUTHZ_POLICY")))
        cache = FactCache(db)
        preshared = config.get("AUTHZ_PRESHARED_KEY", os.environ.get("AUTHZ_PRESHARED_KEY"))
        return cls(
            db=db,
            policy=policy,
            cache=cache,
            store=Store(db, policy, on_commit=cache.note_written),
            authorizer=Authorizer(db, cache, policy),
            keys=KeyRing(cache, preshared),
        )

    def after_fork(self) -> None:
        """In a freshly forked worker: forget the parent's connections (they stay the parent's)."""
        self.db.dispose(close=False)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service. `config` may set DATABASE_URL, AUTHZ_PRESHARED_KEY, AUTHZ_POLICY and MIGRATE."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["authz"] = Runtime.build(config)

    from service.routes.decisions import decisions
    from service.routes.facts import facts
    from service.routes.operations import operations

    app.register_blueprint(decisions)
    app.register_blueprint(facts)
    app.register_blueprint(operations)
    register_error_handlers(app)
    instrument(app)
    return app
