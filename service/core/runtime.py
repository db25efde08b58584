"""The core of one process, built once: database, policy in force, fact cache, write path, authorizer, keys, records."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from models.database import Database
from models.fact_cache import FactCache
from policies.engine import PolicyInForce, load_policy, policy_path
from service.core.api_keys import KeyRing
from service.core.authorizer import Authorizer
from service.core.decision_log import DecisionLog, settings_from
from service.core.policy_keeper import PolicyKeeper
from service.core.records import Records
from service.core.store import Store


@dataclass
class Runtime:
    """Everything a request (or a command) needs, built once per process."""

    db: Database
    policy: PolicyInForce
    cache: FactCache
    store: Store
    authorizer: Authorizer
    keys: KeyRing
    keeper: PolicyKeeper
    decision_log: DecisionLog
    records: Records

    @classmethod
    def build(cls, config: dict[str, Any] | None = None) -> Runtime:
        """Open the database (migrating it unless MIGRATE is false), load the policy, wire the parts.

        ADOPT_POLICY_FILE (the service: true) makes the policy file the policy in
        force if it is new and passes the scenarios; otherwise (the command-line
        tool) the process decides with the policy the change log records.
        """
        config = dict(config or {})
        level, retention_days = settings_from(config)  # a bad setting stops the start, before anything is opened
        db = Database(config.get("DATABASE_URL") or os.environ.get("DATABASE_URL"))
        if config.get("MIGRATE", True):
            db.migrate()
        path = config.get("AUTHZ_POLICY") or os.environ.get("AUTHZ_POLICY") or policy_path()
        policy = PolicyInForce(load_policy(path))
        cache = FactCache(db)
        records = Records(db, config.get("AUTHZ_CHECKPOINT_KEY", os.environ.get("AUTHZ_CHECKPOINT_KEY")))

        def on_commit(revision: int) -> None:
            cache.note_written(revision)
            records.note_written(revision)

        store = Store(db, policy, on_commit=on_commit)
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
            authorizer=Authorizer(db, cache, policy, keeper, records),
            keys=KeyRing(cache, preshared),
            keeper=keeper,
            decision_log=DecisionLog(db, level=level, retention_days=retention_days),
            records=records,
        )

    def close(self) -> None:
        """Shut down: write what the decision log still buffers, stop the fact cache's watcher, close the
        connections (a worker's exit; a test's app)."""
        self.decision_log.close()
        self.records.close()
        self.cache.close()
        self.db.dispose()

    def after_fork(self) -> None:
        """In a freshly forked worker: forget the parent's connections (they stay the parent's)."""
        self.db.dispose(close=False)
