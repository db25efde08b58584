"""Facts as they were at a past revision, rebuilt from the change log alone.

Each answer is the `after` of the latest change-log entry at or before the
revision that touched the fact: an account's settings come from its creation
and its billing-settings updates, a role from the account's creation and the
member changes, a support agent from the support-agent changes. A bulk import's
entries (kind `import`, one per fact) have the same shapes: an account's (no user)
holds its name and settings, a membership's (account and user) its role, a
support agent's (no account) `support_agent`. The current
tables are never read, so the answer is what the log says, whatever happened
since.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models.changelog import current_revision
from models.database import Database
from models.errors import RevisionAhead
from models.tables import AccountRow, ApiKeyRow, ChangeRow, MembershipRow, SupportAgentRow

SETTINGS_KINDS = ("account.create", "billing_settings.update")
ROLE_KINDS = ("account.create", "member.invite", "member.change_role", "member.remove")
SUPPORT_KINDS = ("support_agent.add", "support_agent.remove")
POLICY_KIND = "policy.load"
IMPORT_KIND = "import"  # models/bulk_import.py
_SETTINGS_CHANGES = or_(ChangeRow.kind.in_(SETTINGS_KINDS), and_(ChangeRow.kind == IMPORT_KIND, ChangeRow.user_id.is_(None)))
_ROLE_CHANGES = or_(ChangeRow.kind.in_(ROLE_KINDS), and_(ChangeRow.kind == IMPORT_KIND, ChangeRow.user_id.is_not(None)))
_SUPPORT_CHANGES = or_(
    ChangeRow.kind.in_(SUPPORT_KINDS), and_(ChangeRow.kind == IMPORT_KIND, ChangeRow.account_id.is_(None))
)


class FactsAsOf:
    """A FactSource answering as of `revision`."""

    def __init__(self, session: Session, revision: int) -> None:
        self.session = session
        self.revision = revision

    def _latest(self, *conditions) -> ChangeRow | None:
        return self.session.execute(
            select(ChangeRow).where(ChangeRow.revision <= self.revision, *conditions).order_by(ChangeRow.revision.desc()).limit(1)
        ).scalar()

    def account_settings(self, account_id: str) -> tuple[bool, bool] | None:
        change = self._latest(ChangeRow.account_id == account_id, _SETTINGS_CHANGES)
        if change is None:
            return None
        after = json.loads(change.after)
        return (
            bool(after["restrict_subscription_to_payment_manager"]),
            bool(after["auto_add_subscription_invoices_to_purchases"]),
        )

    def role(self, user_id: str, account_id: str) -> str | None:
        change = self._latest(
            ChangeRow.account_id == account_id, ChangeRow.user_id == user_id, _ROLE_CHANGES
        )
        if change is None:
            return None
        return "admin" if change.kind == "account.create" else json.loads(change.after)["role"]

    def is_support_agent(self, user_id: str) -> bool:
        change = self._latest(ChangeRow.user_id == user_id, _SUPPORT_CHANGES)
        return change is not None and bool(json.loads(change.after)["support_agent"])


@contextmanager
def facts_as_of(db: Database, revision: int) -> Iterator[FactsAsOf]:
    """The facts as of `revision`, in one read transaction; `RevisionAhead` if the log has not reached it."""
    with db.read() as session:
        latest = current_revision(session)
        if revision > latest:
            raise RevisionAhead(f"as_of_revision {revision} is ahead of the latest revision, {latest}")
        yield FactsAsOf(session, revision)


def read_recorded_policy(db: Database, revision: int | None = None) -> tuple[int, str, str] | None:
    """`recorded_policy`, in a read transaction of its own."""
    with db.read() as session:
        return recorded_policy(session, revision)


def recorded_policy(session: Session, revision: int | None = None) -> tuple[int, str, str] | None:
    """The policy in force at `revision` (default: now) as recorded in the log: (revision, sha256, text)."""
    query = select(ChangeRow).where(ChangeRow.kind == POLICY_KIND)
    if revision is not None:
        query = query.where(ChangeRow.revision <= revision)
    change = session.execute(query.order_by(ChangeRow.revision.desc()).limit(1)).scalar()
    if change is None:
        return None
    after = json.loads(change.after)
    return change.revision, after["sha256"], after["text"]


def policy_versions(db: Database) -> list[dict]:
    """Every policy taken up, newest first: revision, time, sha256, source, and what it changed (None: the first)."""
    with db.read() as session:
        rows = session.execute(
            select(ChangeRow.revision, ChangeRow.at, ChangeRow.after)
            .where(ChangeRow.kind == POLICY_KIND)
            .order_by(ChangeRow.revision.desc())
        )
        versions = []
        for revision, at, after in rows:
            recorded = json.loads(after)
            versions.append(
                {
                    "revision": revision,
                    "at": at,
                    "sha256": recorded.get("sha256"),
                    "source": recorded.get("source"),
                    "changes": recorded.get("changes"),
                }
            )
        return versions


def facts_drift(session: Session, limit: int = 20) -> list[str]:
    """Where the fact tables differ from the facts the change log rebuilds (a change made behind its back).

    Replays every entry, then compares accounts, memberships, support agents
    and API keys with the tables; answers at most `limit` differences.
    """
    accounts: dict[str, tuple] = {}
    roles: dict[tuple[str, str], str] = {}
    support: set[str] = set()
    keys: dict[str, tuple] = {}
    for change in session.execute(select(ChangeRow).order_by(ChangeRow.revision).execution_options(yield_per=1000)).scalars():
        after = json.loads(change.after)
        if change.kind == "account.create":
            accounts[change.account_id] = (
                after["name"],
                after["restrict_subscription_to_payment_manager"],
                after["auto_add_subscription_invoices_to_purchases"],
            )
            roles[change.account_id, change.user_id] = "admin"
        elif change.kind == IMPORT_KIND and change.account_id is None:
            (support.add if after["support_agent"] else support.discard)(change.user_id)
        elif change.kind == IMPORT_KIND and change.user_id is None:
            accounts[change.account_id] = (
                after["name"],
                after["restrict_subscription_to_payment_manager"],
                after["auto_add_subscription_invoices_to_purchases"],
            )
        elif change.kind == "billing_settings.update":
            name = accounts.get(change.account_id, (None,))[0]
            accounts[change.account_id] = (
                name,
                after["restrict_subscription_to_payment_manager"],
                after["auto_add_subscription_invoices_to_purchases"],
            )
        elif change.kind in ROLE_KINDS or change.kind == IMPORT_KIND:
            if after["role"] is None:
                roles.pop((change.account_id, change.user_id), None)
            else:
                roles[change.account_id, change.user_id] = after["role"]
        elif change.kind in SUPPORT_KINDS:
            (support.add if after["support_agent"] else support.discard)(change.user_id)
        elif change.kind == "api_key.create":
            keys[after["key"]] = (after["scopes"], False, after.get("secret_sha256"))
        elif change.kind == "api_key.revoke" and after["key"] in keys:
            scopes, _revoked, secret = keys[after["key"]]
            keys[after["key"]] = (scopes, True, secret)

    stored_accounts = {
        a.id: (a.name, a.restrict_subscription_to_payment_manager, a.auto_add_subscription_invoices_to_purchases)
        for a in session.execute(select(AccountRow)).scalars()
    }
    stored_roles = {(m.account_id, m.user_id): m.role for m in session.execute(select(MembershipRow)).scalars()}
    stored_support = set(session.execute(select(SupportAgentRow.user_id)).scalars())
    stored_keys = {
        k.id: (k.scopes, k.revoked_at is not None, k.secret_sha256) for k in session.execute(select(ApiKeyRow)).scalars()
    }
    drift: list[str] = []
    drift += _differences("account", accounts, stored_accounts)
    drift += _differences("membership", roles, stored_roles)
    drift += [f"support agent {u}: in the table, not in the log" for u in sorted(stored_support - support)]
    drift += [f"support agent {u}: in the log, not in the table" for u in sorted(support - stored_support)]
    drift += _differences("API key (scopes, revoked, secret sha256)", keys, stored_keys)
    return drift[:limit]


def _differences(what: str, logged: dict, stored: dict) -> list[str]:
    found = []
    for key in sorted(set(logged) | set(stored), key=str):
        if key not in stored:
            found.append(f"{what} {key}: in the log ({logged[key]}), not in the table")
        elif key not in logged:
            found.append(f"{what} {key}: in the table ({stored[key]}), not in the log")
        elif logged[key] != stored[key]:
            found.append(f"{what} {key}: the table says {stored[key]}, the log says {logged[key]}")
    return found
