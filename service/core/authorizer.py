"""Decisions: read the situation from the facts, look the policy's answer up.

Every decision takes its policy, facts and revision from one snapshot (`snapshot`):
the fact cache, synced and held while the decision reads it, so the revision it
reports is one its facts reflect at least; or, as of a past revision, the facts
rebuilt from the change log and the policy then in force.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from models.database import Database
from models.fact_cache import FactCache
from models.history import facts_as_of
from models.listing import account_ids
from policies.engine import Policy
from policies.explain import explain as explain_decision
from policies.ids import ACCOUNT_SLOT, ACTOR
from policies.situations import FactSource, Names, Situation, id_pattern
from policies.world import RESOURCE_TYPES, account_of
from service.core.account_listing import granting_situations
from service.core.consistency import LATEST, Consistency
from service.core.errors import InvalidRequest
from service.core.inputs import MAX_ID_LENGTH, is_id
from service.core.policy_keeper import PolicyKeeper
from service.core.records import Records
from service.core.trust import missing_account_sentence, record_warnings

Resource = dict[str, str]


class UnknownAction(InvalidRequest):
    code = "unknown_action"


class Authorizer:
    def __init__(
        self,
        db: Database,
        cache: FactCache,
        policy: Callable[[], Policy],
        keeper: PolicyKeeper,
        records: Records,
    ) -> None:
        self.db = db
        self.cache = cache
        self.policy = policy
        self.keeper = keeper
        self.records = records

    @contextmanager
    def snapshot(self, consistency: Consistency = LATEST) -> Iterator[tuple[Policy, FactSource, int]]:
        """The policy, the facts and the revision a decision reads, held while it reads them.

        Latest or at least revision N: the process's fact cache, synced (and held: its
        revision is one the facts reflect at least), and the policy in force after the
        sync. As of revision N: the facts rebuilt from the change log and the policy
        recorded then. `RevisionAhead` for a revision the log has not reached.
        """
        if consistency.kind == "as_of":
            with facts_as_of(self.db, consistency.revision) as facts:
                yield self.keeper.at(consistency.revision), facts, consistency.revision
            return
        with self.cache.lock:
            revision = self.cache.sync(consistency.at_least_revision)
            yield self.policy(), self.cache, revision  # after the sync: the policy in force at that revision

    def _situation(self, policy: Policy, facts: FactSource, actor: str, resource: Resource) -> Situation:
        attributes = {name: value for name, value in resource.items() if name != "type"}
        if facts is self.cache:  # one query for whatever the cache lacks, rather than one per fact
            other_user = RESOURCE_TYPES[resource["type"]].other_user
            self.cache.prefetch(
                actor, account_of(resource["type"], attributes), attributes[other_user] if other_user else None
            )
        return policy.situation(facts, resource["type"], actor, attributes)

    def _check_action(self, policy: Policy, resource_type: str, action: str) -> None:
        if action not in policy.actions[resource_type]:
            raise UnknownAction(
                f"unknown action {action!r} for {resource_type}; its actions are: "
                + ", ".join(policy.actions[resource_type])
            )

    def authorize(
        self, actor: str, action: str, resource: Resource, *, consistency: Consistency = LATEST, explain: bool = False
    ) -> dict[str, Any]:
        """One decision on the facts `consistency` names; with `explain`, also why.

        An explanation, or an answer as of a revision, also carries `warnings`: the
        records it rests on found altered, the account not existing (see trust.py).
        """
        as_of = consistency.revision if consistency.kind == "as_of" else None
        warned = explain or as_of is not None  # only these answers say whether the account exists
        account = _account_of(resource) if warned else None
        with self.snapshot(consistency) as (policy, facts, revision):
            situation = self._situation(policy, facts, actor, resource)
            exists = not warned or facts.account_settings(account) is not None
        self._check_action(policy, resource["type"], action)
        answer: dict[str, Any] = {
            "allowed": policy.is_allowed(situation, action),
            "revision": revision,
            "policy": policy.sha256,
        }
        missing = None if exists else missing_account_sentence(account, as_of)
        if explain:
            answer["explanation"] = explain_decision(
                policy, situation, _names(actor, resource), action, missing_account=missing
            )
        if warned:
            # As of a revision, facts come from the log alone: the tables' drift does not touch them.
            drifting = (account,) if as_of is None and exists else ()
            answer["warnings"] = ([missing] if missing else []) + record_warnings(self.records, revision, drifting)
        return answer

    def authorize_batch(self, checks: list[dict], *, consistency: Consistency = LATEST) -> dict[str, Any]:
        """Every check decided on the same facts, in order."""
        with self.snapshot(consistency) as (policy, facts, revision):
            for index, check in enumerate(checks):
                try:
                    self._check_action(policy, check["resource"]["type"], check["action"])
                except UnknownAction as error:
                    raise UnknownAction(f"checks.{index}.action: {error.message}") from None
            results = [
                {
                    "allowed": policy.is_allowed(
                        self._situation(policy, facts, check["actor"]["id"], check["resource"]), check["action"]
                    )
                }
                for check in checks
            ]
        return {"results": results, "revision": revision, "policy": policy.sha256}

    def actions(self, actor: str, resource: Resource, *, consistency: Consistency = LATEST) -> dict[str, Any]:
        """Every action the policy grants `actor` on `resource`, sorted."""
        as_of = consistency.kind == "as_of"  # only an answer as of a revision says whether the account exists
        account = _account_of(resource) if as_of else None
        with self.snapshot(consistency) as (policy, facts, revision):
            situation = self._situation(policy, facts, actor, resource)
            exists = not as_of or facts.account_settings(account) is not None
        answer = {"actions": sorted(policy.allowed_actions(situation)), "revision": revision, "policy": policy.sha256}
        if as_of:
            missing = [] if exists else [missing_account_sentence(account, consistency.revision)]
            answer["warnings"] = missing + record_warnings(self.records, revision)
        return answer

    def list_accounts(
        self,
        actor: str,
        action: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        consistency: Consistency = LATEST,
    ) -> dict[str, Any]:
        """Every account on which the policy grants `action` to `actor`, in id order, paged if asked.

        The policy's answers become one SQL condition (see account_listing.py); a list
        reads the stored accounts as they are, so it cannot be asked as of a past revision.
        """
        if consistency.kind == "as_of":
            raise InvalidRequest("a list reflects the latest facts (or at least a revision), not a past revision")
        after = _decode_page_token(page_token) if page_token else None
        with self.snapshot(consistency) as (policy, facts, revision):
            support = self.cache.is_support_agent(actor)
            self._check_action(policy, "Account", action)
            # Accounts the policy names by id are decided one by one, like any decision; the query lists the others.
            named = tuple(sorted(policy.id_literals.get(ACCOUNT_SLOT, ())))
            special = [
                account_id
                for account_id in named
                if (after is None or account_id > after)
                and self.cache.account_settings(account_id) is not None
                and policy.is_allowed(self._situation(policy, facts, actor, {"type": "Account", "id": account_id}), action)
            ]
        actor_ids = id_pattern({ACTOR: policy.id_literals.get(ACTOR, frozenset())}, {ACTOR: actor})
        granted = granting_situations(policy, action, support, actor_ids)
        limit = page_size + 1 if page_size is not None else None  # one more: is there another page?
        ids = account_ids(self.db, granted, actor=actor, after=after, limit=limit, excluded=named)
        if special:
            ids = sorted(ids + special)
        next_token = None
        if page_size is not None and len(ids) > page_size:
            ids = ids[:page_size]
            next_token = _encode_page_token(ids[-1])
        return {"ids": ids, "next_page_token": next_token, "revision": revision, "policy": policy.sha256}


def _account_of(resource: Resource) -> str:
    return account_of(resource["type"], {name: value for name, value in resource.items() if name != "type"})


def _names(actor: str, resource: Resource) -> Names:
    other_user = RESOURCE_TYPES[resource["type"]].other_user
    return Names(
        actor=actor,
        account=resource["id"] if resource["type"] == "Account" else resource["account"],
        resource=resource.get("id", f"{resource.get('user')}@{resource.get('account')}"),
        other_user=resource[other_user] if other_user else "",
    )


_MAX_PAGE_TOKEN = 4 * (len('{"after": ""}') + MAX_ID_LENGTH + 2) // 3 + 4  # the longest token given


def _encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode()


def _decode_page_token(token: str) -> str:
    """The last id of the previous page, from a token this service gave; anything else is refused (400).

    A token is compared with the one the service would give for the id it names, so garbage, NUL
    bytes, another encoding of the same JSON or an id outside the grammar never reach the database.
    """
    refused = InvalidRequest("page_token is not a token this service gave", "invalid_page_token")
    if not isinstance(token, str) or not token.isascii() or len(token) > _MAX_PAGE_TOKEN:
        raise refused
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise refused from None
    if not is_id(after) or _encode_page_token(after) != token:
        raise refused
    return after
