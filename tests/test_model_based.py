"""Model-based testing: random sequences of writes and decisions, the service against tests/model.py.

Hypothesis drives the real HTTP API (in-process, on a fresh SQLite database
per sequence) and the reference model side by side; every answer, every
stored fact and every decision must agree, and the invariants must hold after
each step. A counterexample is shrunk to the shortest sequence that fails;
such sequences are kept below as plain regression tests.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from policies.world import ROLES
from service.app import create_app
from tests.model import Model, Outcome
from tests.reference import ACTIONS
from tests.support import TEST_KEY, Api, flask_transport, user

ACCOUNTS = ["acc_1", "acc_2"]
USERS = ["u_1", "u_2", "u_3", "u_4"]
actors = st.one_of(st.none(), st.sampled_from(USERS))
RESOURCE_TYPES = list(ACTIONS)


class ServiceAgainstModel(RuleBasedStateMachine):
    template: Path

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp()
        shutil.copy(self.template, f"{self.directory}/authz.sqlite3")
        self.app = create_app(
            {"DATABASE_URL": f"sqlite:///{self.directory}/authz.sqlite3", "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False}
        )
        self.api = Api(flask_transport(self.app.test_client()))
        self.model = Model()

    def teardown(self) -> None:
        runtime = self.app.extensions["authz"]
        runtime.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @initialize(admins=st.lists(st.sampled_from(USERS), min_size=len(ACCOUNTS), max_size=len(ACCOUNTS)))
    def accounts_exist(self, admins):
        for account, admin in zip(ACCOUNTS, admins, strict=True):
            self.create_account(account, admin)

    def agree(self, answer, expected: Outcome, what: str) -> None:
        got = (answer.status, answer.error_code)
        want = (expected.status, expected.code)
        assert got == want, f"{what}: the service answered {answer}, the model expects {want}"

    @rule(account=st.sampled_from(ACCOUNTS), admin=st.sampled_from(USERS))
    def create_account(self, account, admin):
        answer = self.api.post("/v1/accounts", {"id": account, "name": account, "admin": admin})
        self.agree(answer, self.model.create_account(account, admin), f"create {account} admin {admin}")

    @rule(actor=actors, account=st.sampled_from(ACCOUNTS), member=st.sampled_from(USERS), role=st.sampled_from(ROLES))
    def invite(self, actor, account, member, role):
        body = {"user": member, "role": role, **({"acting_user": actor} if actor else {})}
        answer = self.api.post(f"/v1/accounts/{account}/members", body)
        self.agree(answer, self.model.invite(actor, account, member, role), f"{actor} invites {member} as {role}")

    @rule(actor=actors, account=st.sampled_from(ACCOUNTS), member=st.sampled_from(USERS), role=st.sampled_from(ROLES))
    def change_role(self, actor, account, member, role):
        body = {"role": role, **({"acting_user": actor} if actor else {})}
        answer = self.api.patch(f"/v1/accounts/{account}/members/{member}", body)
        self.agree(answer, self.model.change_role(actor, account, member, role), f"{actor} makes {member} {role}")

    @rule(actor=actors, account=st.sampled_from(ACCOUNTS), member=st.sampled_from(USERS))
    def remove(self, actor, account, member):
        query = f"?acting_user={actor}" if actor else ""
        answer = self.api.delete(f"/v1/accounts/{account}/members/{member}{query}")
        self.agree(answer, self.model.remove(actor, account, member), f"{actor} removes {member} from {account}")

    @rule(
        actor=actors,
        account=st.sampled_from(ACCOUNTS),
        restricted=st.one_of(st.none(), st.booleans()),
        auto_add=st.one_of(st.none(), st.booleans()),
    )
    def settings(self, actor, account, restricted, auto_add):
        body = {}
        if restricted is not None:
            body["restrict_subscription_to_payment_manager"] = restricted
        if auto_add is not None:
            body["auto_add_subscription_invoices_to_purchases"] = auto_add
        if not body:
            return
        if actor:
            body["acting_user"] = actor
        answer = self.api.patch(f"/v1/accounts/{account}/billing-settings", body)
        self.agree(answer, self.model.settings(actor, account, restricted, auto_add), f"{actor} sets {body}")

    @rule(member=st.sampled_from(USERS), add=st.booleans())
    def support_agent(self, member, add):
        if add:
            answer = self.api.put(f"/v1/support-agents/{member}")
            self.agree(answer, self.model.add_support(member), f"support agent {member}")
        else:
            answer = self.api.delete(f"/v1/support-agents/{member}")
            self.agree(answer, self.model.remove_support(member), f"no longer support agent {member}")

    @rule(
        actor=st.sampled_from(USERS),
        resource_type=st.sampled_from(RESOURCE_TYPES),
        account=st.sampled_from(ACCOUNTS),
        other=st.sampled_from(USERS),
        data=st.data(),
    )
    def decide(self, actor, resource_type, account, other, data):
        action = data.draw(st.sampled_from(ACTIONS[resource_type]))
        resource = {"type": resource_type}
        if resource_type == "Account":
            resource["id"] = account
        elif resource_type == "Membership":
            resource.update(account=account, user=other)
        else:
            resource.update(id="r_1", account=account)
            if resource_type == "PaymentMethod":
                resource["owner"] = other
        answer = self.api.post("/v1/authorize", {"actor": user(actor), "action": action, "resource": resource})
        assert answer.status == 200, answer
        want = self.model.allowed(resource_type, actor, action, resource)
        assert answer.json["allowed"] == want, f"{actor} {action} {resource}: service {answer.json}, model {want}"

    @invariant()
    def every_decision_matches_the_model(self):
        """Every action of every user on every resource of both accounts, in one batch."""
        checks = [
            {"actor": user(actor), "action": action, "resource": resource}
            for actor in USERS
            for resource in _resources()
            for action in ACTIONS[resource["type"]]
        ]
        answer = self.api.post("/v1/authorize/batch", {"checks": checks})
        assert answer.status == 200, answer
        wrong = [
            f"{check['actor']['id']} {check['action']} {check['resource']}: service {result['allowed']}"
            for check, result in zip(checks, answer.json["results"], strict=True)
            if result["allowed"] != self.model.allowed(
                check["resource"]["type"], check["actor"]["id"], check["action"], check["resource"]
            )
        ]
        assert not wrong, "decisions differ from the model:\n" + "\n".join(wrong)

    @invariant()
    def stored_facts_match_the_model(self):
        self.model.check_invariants()
        for account_id, account in self.model.accounts.items():
            members = self.api.get(f"/v1/accounts/{account_id}").json
            assert {m["user"]: m["role"] for m in members["members"]} == account.members, account_id
            settings = members["billing_settings"]
            assert settings["restrict_subscription_to_payment_manager"] == account.restricted
            assert settings["auto_add_subscription_invoices_to_purchases"] == account.auto_add


def _resources() -> list[dict]:
    resources = []
    for account in ACCOUNTS:
        resources.append({"type": "Account", "id": account})
        for kind in ("Subscription", "SubscriptionInvoice", "Document"):
            resources.append({"type": kind, "id": "r_1", "account": account})
        for other in USERS:
            resources.append({"type": "PaymentMethod", "id": "pm_1", "account": account, "owner": other})
            resources.append({"type": "Membership", "account": account, "user": other})
    return resources


@pytest.mark.parametrize("seed", [0])
def test_random_sequences_agree_with_the_model(sqlite_template, seed):
    ServiceAgainstModel.template = sqlite_template
    run_state_machine_as_test(
        ServiceAgainstModel,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
