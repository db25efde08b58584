"""What the benchmarks ask: decisions whose answers the story fixes, in the shapes the endpoints take."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from bench.datasets import PARTNER, DataSet, account_id, admin_of

LIST_REQUEST = {"actor": {"type": "User", "id": PARTNER}, "action": "manage_subscription", "resource_type": "Account"}


@dataclass(frozen=True)
class Check:
    """One decision and the answer the story gives on a partner's account (restricted, invoices not added)."""

    actor: str
    action: str
    resource: dict
    expected: bool

    def body(self) -> dict:
        return {"actor": {"type": "User", "id": self.actor}, "action": self.action, "resource": self.resource}


def decision_pool(data: DataSet) -> list[Check]:
    """1,000 decisions, one on each of the partner's accounts, rotating over six kinds of question.

    The same pool at both store sizes, so that the size of the store is the only difference.
    """
    pool = []
    for position, number in enumerate(data.partner_numbers):
        account, admin = account_id(number), admin_of(number)
        kinds = (
            Check(PARTNER, "manage_subscription", {"type": "Account", "id": account}, True),
            Check(PARTNER, "view_workspace", {"type": "Account", "id": account}, False),
            Check(admin, "view_subscription", {"type": "Account", "id": account}, False),
            Check(admin, "view", {"type": "Document", "id": f"doc_{number}", "account": account}, True),
            Check(
                PARTNER, "delete", {"type": "PaymentMethod", "id": f"pm_{number}", "account": account, "owner": PARTNER},
                True,
            ),
            Check(admin, "remove", {"type": "Membership", "account": account, "user": PARTNER}, False),
        )
        pool.append(kinds[position % len(kinds)])
    return pool


def batch_body(checks: list[Check]) -> bytes:
    return json.dumps({"checks": [check.body() for check in checks]}).encode()


def authorize_lines(checks: list[Check]) -> str:
    """The `/v1/authorize` bodies, one JSON document a line, for the wrk script."""
    return "".join(json.dumps(check.body(), separators=(",", ":")) + "\n" for check in checks)


def every_membership_batches(data: DataSet, size: int = 1000) -> Iterator[list[dict]]:
    """Batches asking, for every membership of the store, whether the member may `read` the account.

    Sent to one worker, they leave in its fact cache every account's settings,
    every role and every user's support-agent flag: the most a worker can hold.
    """
    batch: list[dict] = []
    for account, user, _role in data.memberships:
        batch.append({"actor": {"type": "User", "id": user}, "action": "read", "resource": {"type": "Account", "id": account}})
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
