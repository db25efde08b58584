"""Which accounts to list: the policy's decision table, read as the combinations of facts that grant an action.

A list must equal what one decision per account would answer. From the decision
table, the situations in which `action` is granted on an account (for an actor who
is, or is not, a support agent) give the combinations `(actor's role, restricted,
auto_add)` that grant it; `models.listing` turns them into one SQL condition the
database walks by index. Accounts whose ids the policy names (`account.id =
"acc_demo"`) are left out of the query and decided one by one (see the authorizer).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

from models.listing import Granted
from policies.engine import Policy
from policies.situations import IdPattern, Situation
from policies.world import ROLES


@lru_cache(maxsize=512)
def granting_situations(policy: Policy, action: str, support: bool, actor_ids: IdPattern = ()) -> Granted:
    """(actor role, restricted, auto_add) of every situation in which the policy grants `action` on an account.

    `actor_ids` says which of the policy's literals the actor's id equals; the
    account's id equals none of them (those accounts are decided one by one).
    """
    return frozenset(
        (role, restricted, auto_add)
        for role, restricted, auto_add in product((None, *ROLES), (False, True), (False, True))
        if policy.is_allowed(Situation("Account", role, support, restricted, auto_add, ids=actor_ids), action)
    )
