"""Listing the accounts on which an action is granted: a condition on roles and settings, as one SQL query.

The caller (`service/core/account_listing.py`) reads from the policy's decision table
the combinations that grant the action: `(actor's role, restricted, auto_add)`, a role of
None meaning "not a member". Here they become one condition, reduced to its simplest
form (`role = 'payment_manager' OR (role = 'admin' AND NOT restricted)`), so the database
can walk the actor's memberships by index in account order. Only if a non-member could be
granted the action does the query walk every account. Statements are built once per set of
combinations and shape, then reused with the actor's id bound.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from itertools import product

from sqlalchemy import ColumnElement, Select, and_, bindparam, false, or_, select, true, union_all

from models.database import Database
from models.tables import AccountRow, MembershipRow

Granted = frozenset[tuple[str | None, bool, bool]]  # (actor's role or None, restricted, auto_add) that grant
RESTRICTED = AccountRow.restrict_subscription_to_payment_manager
AUTO_ADD = AccountRow.auto_add_subscription_invoices_to_purchases


def account_ids(
    db: Database,
    granted: Granted,
    *,
    actor: str,
    after: str | None = None,
    limit: int | None = None,
    excluded: tuple[str, ...] = (),
) -> list[str]:
    """Ids of the accounts on which `granted` holds for `actor`, in id order, after `after`, at most `limit`."""
    query = account_query(granted, limit is not None, after is not None, bool(excluded))
    parameters = {"actor": actor, "after": after, "limit": limit or 0, "excluded": list(excluded)}
    with db.engine.connect() as connection:
        return list(connection.execute(query, parameters).scalars())


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


def _by_role(granted: Granted) -> dict[str | None, set[tuple[bool, bool]]]:
    by_role: dict[str | None, set[tuple[bool, bool]]] = defaultdict(set)
    for role, restricted, auto_add in granted:
        by_role[role].add((restricted, auto_add))
    return by_role


def condition(granted: Granted) -> ColumnElement[bool]:
    """The simplest condition on MembershipRow.role and the account's settings that holds exactly when granted."""
    by_role = _by_role(granted)
    always = sorted(role for role, combinations in by_role.items() if len(combinations) == 4 and role is not None)
    terms: list[ColumnElement[bool]] = [MembershipRow.role.in_(always)] if always else []
    for role, combinations in sorted(by_role.items(), key=lambda item: str(item[0])):
        if role in always:
            continue
        role_condition = MembershipRow.role.is_(None) if role is None else MembershipRow.role == role
        settings = _settings_condition(combinations)
        terms.append(role_condition if len(combinations) == 4 else and_(role_condition, settings))
    return or_(false(), *terms)


@lru_cache(maxsize=512)
def account_query(granted: Granted, paged: bool, resumed: bool, excluded: bool = False) -> Select:
    """The statement listing account ids; binds `actor`, `after` / `limit` when resumed / paged, `excluded` if asked.

    `excluded` leaves out accounts by id (bound as a list): the caller decides those one by one.
    """
    if any(role is None for role, _, _ in granted):
        # A non-member may be granted the action: every account has to be looked at.
        query = select(AccountRow.id).outerjoin(
            MembershipRow, and_(MembershipRow.account_id == AccountRow.id, MembershipRow.user_id == bindparam("actor"))
        )
        return _page(query.where(condition(granted)), AccountRow.id, paged, resumed, excluded)
    # Walk the actor's memberships in account order (index memberships_by_user). The roles granted
    # whatever the settings need nothing more; only the others look the account's settings up, so a
    # partner's list costs the same in a store of a thousand accounts or of a million.
    by_role = _by_role(granted)
    always = sorted(role for role, combinations in by_role.items() if len(combinations) == 4)
    branches = []
    if always:
        branches.append(
            select(MembershipRow.account_id).where(MembershipRow.user_id == bindparam("actor"), MembershipRow.role.in_(always))
        )
    for role, combinations in sorted(by_role.items()):
        if role not in always:
            branches.append(
                select(MembershipRow.account_id)
                .join(AccountRow, AccountRow.id == MembershipRow.account_id)
                .where(
                    MembershipRow.user_id == bindparam("actor"), MembershipRow.role == role, _settings_condition(combinations)
                )
            )
    if not branches:
        return select(MembershipRow.account_id).where(false())
    if len(branches) == 1:
        return _page(branches[0], MembershipRow.account_id, paged, resumed, excluded)
    # Each branch pages itself (in a subquery: SQLite takes no ORDER BY inside a UNION), then the union does.
    pages = [_page(branch, MembershipRow.account_id, paged, resumed, excluded).subquery() for branch in branches]
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
