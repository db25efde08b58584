"""/v1/list answers exactly the accounts on which /v1/authorize says allowed, on a random store."""

from __future__ import annotations

import random

from tests.reference import ACTIONS
from tests.support import account, user

USERS = [f"u_{n}" for n in range(6)]


def test_list_agrees_with_authorize_for_every_action_and_user(api):
    chance = random.Random(7)
    accounts = [f"acc_{n:02d}" for n in range(24)]
    for account_id in accounts:
        admin = chance.choice(USERS)
        api.create_account(account_id, admin)
        for member in chance.sample([u for u in USERS if u != admin], chance.randint(0, 4)):
            role = chance.choice(["admin", "collaborator", "reader", "payment_manager"])
            api.invite(account_id, member, role)  # a second payment manager is refused: fine
        if chance.random() < 0.5:
            api.settings(account_id, None, auto_add_subscription_invoices_to_purchases=False)
        if chance.random() < 0.6:
            api.settings(account_id, None, restrict_subscription_to_payment_manager=True)  # refused without a PM
    api.put("/v1/support-agents/u_5")
    for actor in USERS:
        for action in ACTIONS["Account"]:
            listed = api.post("/v1/list", {"actor": user(actor), "action": action, "resource_type": "Account"}).json
            checks = [{"actor": user(actor), "action": action, "resource": account(a)} for a in accounts]
            results = api.post("/v1/authorize/batch", {"checks": checks}).json["results"]
            allowed = [a for a, result in zip(accounts, results, strict=True) if result["allowed"]]
            assert listed["ids"] == allowed, (actor, action)
            paged, token = [], None
            while True:
                body = {"actor": user(actor), "action": action, "resource_type": "Account", "page_size": 3}
                page = api.post("/v1/list", {**body, **({"page_token": token} if token else {})}).json
                paged += page["ids"]
                token = page["next_page_token"]
                if token is None:
                    break
            assert paged == allowed, (actor, action, "paged")
