"""The SQL that lists the accounts on which the policy grants an action: the policy's table, as a query.

From the decision table, the situations in which `action` is granted on an
account (for an actor who is, or is not, a support agent) become one
condition on the actor's role and the account's two settings, reduced to its
simplest form (`role = 'payment_manager' OR (role = 'admin' AND NOT
restricted)`), so the database can walk the actor's memberships by index in
account order. Only if the policy could grant the action to a non-member does
the query walk every account. Accounts whose ids the policy names
(`account.id = "acc_demo"`) are left out of the query and decided one by one. Statements are built once per policy, action
and shape, then reused with the actor's id bound.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from itertools import product

from sqlalchemy import ColumnElement, Select, and_, bindparam, false, or_, select, true, union_all

from models.tables import Account, Membership
from policies.engine import Policy
from policies.situations import IdPattern, Situation
from policies.world import ROLES

RESTRICTED = Account.restrict_subscription_to_payment_manager
AUTO_ADD = Account.auto_add_subscription_invoices_to_purchases


def granting_situations(
    policy: Policy, action: str, support: bool, actor_ids: IdPattern = ()
) -> frozenset[tuple[str | None, bool, bool]]:
    """(actor role, restricted, auto_add) of every situation in which the policy grants `action` on an account.

    `actor_ids` says which of the policy's literals the actor's id equals; the
    account's id equals none of them (those accounts are decided one by one).
    """
    return frozenset(
        (role, restricted, auto_add)
        for role, restricted, auto_add in product((None, *ROLES), (False, True), (False, True))
        if policy.is_allowed(Situation("Account", role, support, restricted, auto_add, ids=actor_ids), action)
    )


def _settings_condition(combinations: set[tuple[bool, bool]]) -> ColumnElement[bool]:
    restricted_values = {restricted for restricted, _ in combinations}
    auto_add_values = {auto_add for _, auto_add in combinations}
    if set(product(restricted_values, auto_add_values)) != combinations:
        return or_(*(and_(RESTRICTED == r, AUTO_ADD == a) for r, a in sorted(combinations)))
    parts = []
    if len(restricted_values) == 1:
        parts.append(RESTRICTED == next(iter(restricted_values)))
    if len(auto_add_values) == 1:
        parts.append(AUTO_ADD == next(iter(auto_add_values)))
    return and_(true(), *parts) if parts else true()


def _by_role(granted: frozenset[tuple[str | None, bool, bool]]) -> dict[str | None, set[tuple[bool, bool]]]:
    by_role: dict[str | None, set[tuple[bool, bool]]] = defaultdict(set)
    for role, restricted, auto_add in granted:
        by_role[role].add((restricted, auto_add))
    return by_role


def condition(granted: frozenset[tuple[str | None, bool, bool]]) -> ColumnElement[bool]:
    """The simplest condition on Membership.role and the account's settings that holds exactly when granted."""
    by_role = _by_role(granted)
    always = sorted(role for role, combinations in by_role.items() if len(combinations) == 4 and role is not None)
    terms: list[ColumnElement[bool]] = [Membership.role.in_(always)] if always else []
    for role, combinations in sorted(by_role.items(), key=lambda item: str(item[0])):
        if role in always:
            continue
        role_condition = Membership.role.is_(None) if role is None else Membership.role == role
        settings = _settings_condition(combinations)
        terms.append(role_condition if len(combinations) == 4 else and_(role_condition, settings))
    return or_(false(), *terms)


@lru_cache(maxsize=512)
def account_query(
    policy: Policy, action: str, support: bool, paged: bool, resumed: bool, actor_ids: IdPattern = (),
    excluded: bool = False,
) -> Select:
    """The statement listing account ids; binds `actor`, `after` / `limit` when resumed / paged, `excluded` if asked.

    `excluded` leaves out the accounts whose ids the policy names (bound as a list): they are decided one by one.
    """
    granted = granting_situations(policy, action, support, actor_ids)
    if any(role is None for role, _, _ in granted):
        # A non-member may be granted the action: every account has to be looked at.
        query = select(Account.id).outerjoin(
            Membership, and_(Membership.account_id == Account.id, Membership.user_id == bindparam("actor"))
        )
        return _page(query.where(condition(granted)), Account.id, paged, resumed, excluded)
    # Walk the actor's memberships in account order (index memberships_by_user). The roles granted
    # whatever the settings need nothing more; only the others look the account's settings up, so a
    # partner's list costs the same in a store of a thousand accounts or of a million.
    by_role = _by_role(granted)
    always = sorted(role for role, combinations in by_role.items() if len(combinations) == 4)
    branches = []
    if always:
        branches.append(
            select(Membership.account_id).where(Membership.user_id == bindparam("actor"), Membership.role.in_(always))
        )
    for role, combinations in sorted(by_role.items()):
        if role not in always:
            branches.append(
                select(Membership.account_id)
                .join(Account, Account.id == Membership.account_id)
                .where(
                    Membership.user_id == bindparam("actor"), Membership.role == role, _settings_condition(combinations)
                )
            )
    if not branches:
        return select(Membership.account_id).where(false())
    if len(branches) == 1:
        return _page(branches[0], Membership.account_id, paged, resumed, excluded)
    # Each branch pages itself (in a subquery: SQLite takes no ORDER BY inside a UNION), then the union does.
    pages = [_page(branch, Membership.account_id, paged, resumed, excluded).subquery() for branch in branches]
    each = union_all(*(select(page.c.account_id) for page in pages)).subquery()
    return _page(select(each.c.account_id), each.c.account_id, paged, resumed)


def _page(query: Select, account_id, paged: bool, resumed: bool, excluded: bool = False) -> Select:
    query = query.order_by(account_id)
    if excluded:
        query = query.where(account_id.not_in(bindparam("excluded", expanding=True)))
    if resumed:
        query = query.where(account_id > bindparam("after"))
    if paged:
        query = query.limit(bindparam("limit"))
    return query
