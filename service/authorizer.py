"""Decisions: read the situation from the fact cache, look the policy's answer up.

Every decision holds the fact cache, synced, while it reads its facts, so the
revision it reports is one its facts reflect at least.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from models.changelog import current_revision
from models.db import Database
from models.errors import StoreError
from models.facts import FactCache, RevisionAhead
from models.history import FactsAsOf
from policies.engine import Policy
from policies.explain import explain
from policies.ids import ACCOUNT_SLOT, ACTOR
from policies.situations import Names, Situation, id_pattern
from policies.world import RESOURCE_TYPES, account_of
from service.account_listing import account_query
from service.policy_keeper import PolicyKeeper

Resource = dict[str, str]


class UnknownAction(StoreError):
    code = "unknown_action"


class Authorizer:
    def __init__(self, db: Database, cache: FactCache, policy: Callable[[], Policy], keeper: PolicyKeeper) -> None:
        self.db = db
        self.cache = cache
        self.policy = policy
        self.keeper = keeper

    def _situation(self, policy: Policy, actor: str, resource: Resource) -> Situation:
        attributes = {name: value for name, value in resource.items() if name != "type"}
        other_user = RESOURCE_TYPES[resource["type"]].other_user
        self.cache.prefetch(
            actor, account_of(resource["type"], attributes), attributes[other_user] if other_user else None
        )
        return policy.situation(self.cache, resource["type"], actor, attributes)

    def _check_action(self, policy: Policy, resource_type: str, action: str) -> None:
        if action not in policy.actions[resource_type]:
            raise UnknownAction(
                f"unknown action {action!r} for {resource_type}; its actions are: "
                + ", ".join(policy.actions[resource_type])
            )

    def authorize(
        self,
        actor: str,
        action: str,
        resource: Resource,
        at_least_revision: int | None = None,
        with_explanation: bool = False,
        as_of_revision: int | None = None,
    ) -> dict[str, Any]:
        """One decision, now (at least as of `at_least_revision`) or as it was at `as_of_revision`."""
        if as_of_revision is not None:
            policy, situation, revision = self._as_of(as_of_revision, actor, resource)
        else:
            with self.cache.fresh(at_least_revision) as revision:
                policy = self.policy()  # after the sync: the policy in force at that revision
                situation = self._situation(policy, actor, resource)
        self._check_action(policy, resource["type"], action)
        answer: dict[str, Any] = {
            "allowed": policy.is_allowed(situation, action),
            "revision": revision,
            "policy": policy.sha256,
        }
        if with_explanation:
            answer["explanation"] = explain(policy, situation, _names(actor, resource), action)
        return answer

    def _as_of(self, revision: int, actor: str, resource: Resource) -> tuple[Policy, Situation, int]:
        """The policy and the situation as they were at `revision`, rebuilt from the change log."""
        with self.db.read() as session:
            latest = current_revision(session)
            if revision > latest:
                raise RevisionAhead(f"as_of_revision {revision} is ahead of the latest revision, {latest}")
            attributes = {name: value for name, value in resource.items() if name != "type"}
            policy = self.keeper.at(revision)
            situation = policy.situation(FactsAsOf(session, revision), resource["type"], actor, attributes)
        return policy, situation, revision

    def authorize_batch(self, checks: list[dict], at_least_revision: int | None = None) -> dict[str, Any]:
        with self.cache.fresh(at_least_revision) as revision:
            policy = self.policy()
            for index, check in enumerate(checks):
                try:
                    self._check_action(policy, check["resource"]["type"], check["action"])
                except UnknownAction as error:
                    raise UnknownAction(f"checks.{index}.action: {error.message}") from None
            results = [
                {"allowed": policy.is_allowed(self._situation(policy, check["actor"]["id"], check["resource"]), check["action"])}
                for check in checks
            ]
        return {"results": results, "revision": revision, "policy": policy.sha256}

    def actions(
        self, actor: str, resource: Resource, at_least_revision: int | None = None, as_of_revision: int | None = None
    ) -> dict[str, Any]:
        if as_of_revision is not None:
            policy, situation, revision = self._as_of(as_of_revision, actor, resource)
        else:
            with self.cache.fresh(at_least_revision) as revision:
                policy = self.policy()
                situation = self._situation(policy, actor, resource)
        return {"actions": sorted(policy.allowed_actions(situation)), "revision": revision, "policy": policy.sha256}

    def list_accounts(
        self,
        actor: str,
        action: str,
        page_size: int | None = None,
        page_token: str | None = None,
        at_least_revision: int | None = None,
    ) -> dict[str, Any]:
        """Every account on which the policy grants `action` to `actor`, in id order, paged if asked.

        The policy's answers become one SQL condition (see account_listing.py).
        """
        after = _decode_page_token(page_token) if page_token else None
        with self.cache.fresh(at_least_revision) as revision:
            policy = self.policy()
            support = self.cache.is_support_agent(actor)
            self._check_action(policy, "Account", action)
            # Accounts the policy names by id are decided one by one, like any decision; the query lists the others.
            named = sorted(policy.id_literals.get(ACCOUNT_SLOT, ()))
            special = [
                account_id
                for account_id in named
                if (after is None or account_id > after)
                and self.cache.account_settings(account_id) is not None
                and policy.is_allowed(self._situation(policy, actor, {"type": "Account", "id": account_id}), action)
            ]
        actor_ids = id_pattern({ACTOR: policy.id_literals.get(ACTOR, frozenset())}, {ACTOR: actor})
        query = account_query(policy, action, support, page_size is not None, after is not None, actor_ids, bool(named))
        parameters = {"actor": actor, "after": after, "limit": (page_size or 0) + 1, "excluded": named}
        with self.db.engine.connect() as connection:
            ids = list(connection.execute(query, parameters).scalars())
        if special:
            ids = sorted(ids + special)
        next_token = None
        if page_size is not None and len(ids) > page_size:
            ids = ids[:page_size]
            next_token = _encode_page_token(ids[-1])
        return {"ids": ids, "next_page_token": next_token, "revision": revision, "policy": policy.sha256}


def _names(actor: str, resource: Resource) -> Names:
    other_user = RESOURCE_TYPES[resource["type"]].other_user
    return Names(
        actor=actor,
        account=resource["id"] if resource["type"] == "Account" else resource["account"],
        resource=resource.get("id", f"{resource.get('user')}@{resource.get('account')}"),
        other_user=resource[other_user] if other_user else "",
    )


def _encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode()


def _decode_page_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise StoreError("page_token is not a token this service gave", "invalid_page_token") from None
    if not isinstance(after, str):
        raise StoreError("page_token is not a token this service gave", "invalid_page_token")
    return after
