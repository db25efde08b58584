"""The file is the truth: the service answers exactly what oso answers on the full stored facts.

For the shipped policy and each `enforced` variant of `tests/policy_variants.yaml`,
hypothesis writes random facts through the HTTP API and asks random questions
(authorize with and without explanation, batch, actions, list with and without
pages, as of a past revision); every answer is compared with live oso,
evaluated on a world built from every stored fact (every membership of every
user, real ids). Each `refused` variant must fail to load, naming one of its
own lines and the reason.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from policies.engine import DEFAULT_POLICY_PATH, PolicyError, UnsoundPolicy, new_oso, policy_from_text
from policies.world import (
    RESOURCE_TYPES,
    ROLES,
    Account,
    Document,
    Membership,
    Memberships,
    PaymentMethod,
    RoleOnAccount,
    Subscription,
    SubscriptionInvoice,
    User,
)
from service.app import create_app
from tests.support import TEST_KEY, Api, flask_transport

BASE = DEFAULT_POLICY_PATH.read_text()
VARIANTS = yaml.safe_load((Path(__file__).parent / "policy_variants.yaml").read_text())
# Ids the variants name, and ordinary ones: every literal of the corpus can be met.
USERS = ["u_1", "u_2", "u_3", "u_fired", "u_chief_auditor", "u_lead", "u_robot", "u_trainee"]
ACCOUNTS = ["acc_1", "acc_2", "acc_demo", "acc_demo2", "acc_frozen", "acc_special"]
RESOURCE_IDS = ["r_1", "doc_public"]


def variant_text(variant: dict) -> str:
    lines = BASE.splitlines()
    for removed in variant.get("remove", []):
        assert removed in lines, f"{variant['name']}: the line {removed!r} is not in policy.polar"
        lines.remove(removed)
    return "\n".join(lines) + "\n" + variant.get("append", "")


def test_the_corpus_is_large_enough():
    assert sum(v["expect"] == "enforced" for v in VARIANTS) >= 8
    assert sum(v["expect"] == "refused" for v in VARIANTS) >= 10


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v["expect"] == "refused"], ids=lambda v: v["name"])
def test_a_policy_the_table_cannot_carry_is_refused_naming_its_rule_and_line(variant):
    source = variant_text(variant)
    appended_from = len(source.splitlines()) - len(variant["append"].splitlines()) + 1
    with pytest.raises(UnsoundPolicy) as refused:
        policy_from_text(source, "variant.polar")
    error = refused.value
    assert variant["because"] in str(error), str(error)
    assert error.line is not None and error.line >= appended_from, str(error)
    assert f"variant.polar line {error.line} (rule " in str(error)


# -- the differential test ------------------------------------------------------------------


@dataclass
class StoredFacts:
    """Every fact the database holds, as oso would read them with nothing left out."""

    settings: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    roles: dict[tuple[str, str], str] = field(default_factory=dict)  # (user, account) -> role
    support: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, app) -> StoredFacts:
        facts = cls()
        with app.extensions["authz"].db.engine.connect() as connection:
            for account_id, restricted, auto_add in connection.execute(
                text(
                    "SELECT id, restrict_subscription_to_payment_manager, "
                    "auto_add_subscription_invoices_to_purchases FROM accounts"
                )
            ):
                facts.settings[account_id] = (bool(restricted), bool(auto_add))
            for account_id, user_id, role in connection.execute(
                text("SELECT account_id, user_id, role FROM memberships")
            ):
                facts.roles[user_id, account_id] = role
            facts.support = {row[0] for row in connection.execute(text("SELECT user_id FROM support_agents"))}
        return facts

    def user(self, user_id: str) -> User:
        held = [RoleOnAccount(account, role) for (user, account), role in sorted(self.roles.items()) if user == user_id]
        return User(user_id, user_id in self.support, Memberships(held))

    def account(self, account_id: str) -> Account:
        return Account(account_id, *self.settings.get(account_id, (False, True)))

    def resource(self, resource: dict) -> object:
        kind = resource["type"]
        if kind == "Account":
            return self.account(resource["id"])
        account = self.account(resource["account"])
        if kind == "PaymentMethod":
            return PaymentMethod(resource["id"], account, self.user(resource["owner"]))
        if kind == "Membership":
            role = self.roles.get((resource["user"], resource["account"]))
            return Membership(account, self.user(resource["user"]), role)
        return {"Subscription": Subscription, "SubscriptionInvoice": SubscriptionInvoice, "Document": Document}[kind](
            resource["id"], account
        )


def oracle_actions(oso, facts: StoredFacts, actor: str, resource: dict) -> set[str]:
    return set(oso.authorized_actions(facts.user(actor), facts.resource(resource)))


writes = st.lists(
    st.one_of(
        st.tuples(st.just("account"), st.sampled_from(ACCOUNTS), st.sampled_from(USERS)),
        st.tuples(st.just("invite"), st.sampled_from(ACCOUNTS), st.sampled_from(USERS), st.sampled_from(ROLES)),
        st.tuples(st.just("settings"), st.sampled_from(ACCOUNTS), st.booleans(), st.booleans()),
        st.tuples(st.just("support"), st.sampled_from(USERS), st.booleans()),
        st.tuples(st.just("remove"), st.sampled_from(ACCOUNTS), st.sampled_from(USERS)),
    ),
    min_size=3,
    max_size=14,
)


@st.composite
def resources(draw) -> dict:
    kind = draw(st.sampled_from(list(RESOURCE_TYPES)))
    values = {
        "id": draw(st.sampled_from(ACCOUNTS if kind == "Account" else RESOURCE_IDS)),
        "account": draw(st.sampled_from(ACCOUNTS)),
        "owner": draw(st.sampled_from(USERS)),
        "user": draw(st.sampled_from(USERS)),
    }
    return {"type": kind, **{name: values[name] for name in RESOURCE_TYPES[kind].attributes}}


questions = st.lists(st.tuples(st.sampled_from(USERS), resources()), min_size=5, max_size=15)


def _apply(api: Api, write: tuple) -> None:
    kind, *values = write
    if kind == "account":
        api.post("/v1/accounts", {"id": values[0], "name": values[0], "admin": values[1]})
    elif kind == "invite":
        api.post(f"/v1/accounts/{values[0]}/members", {"user": values[1], "role": values[2]})
    elif kind == "settings":
        api.patch(
            f"/v1/accounts/{values[0]}/billing-settings",
            {"restrict_subscription_to_payment_manager": values[1], "auto_add_subscription_invoices_to_purchases": values[2]},
        )
    elif kind == "support":
        (api.put if values[1] else api.delete)(f"/v1/support-agents/{values[0]}")
    else:
        api.delete(f"/v1/accounts/{values[0]}/members/{values[1]}")


ENFORCED = [("policy.polar", BASE)] + [(v["name"], variant_text(v)) for v in VARIANTS if v["expect"] == "enforced"]


@pytest.mark.parametrize("name, source", ENFORCED, ids=[name for name, _ in ENFORCED])
def test_every_answer_is_what_oso_answers_on_the_full_facts(name, source, sqlite_template, tmp_path):
    policy_file = tmp_path / "policy.polar"
    policy_file.write_text(source)
    try:
        policy = policy_from_text(source, "policy.polar")
    except PolicyError as error:  # an enforced variant must load
        pytest.fail(f"{name} was refused: {error}")
    oracle = new_oso(source)

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(writes=writes, asked=questions, data=st.data())
    def differential(writes, asked, data):
        directory = tempfile.mkdtemp()
        shutil.copy(sqlite_template, f"{directory}/authz.sqlite3")
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{directory}/authz.sqlite3",
                "AUTHZ_PRESHARED_KEY": TEST_KEY,
                "AUTHZ_POLICY": str(policy_file),
                "MIGRATE": False,
                "ADOPT_POLICY_FILE": False,
            }
        )
        try:
            api = Api(flask_transport(app.test_client()))
            history = []
            for write in writes:
                _apply(api, write)
                history.append((api.revision(), StoredFacts.read(app)))
            facts = history[-1][1]
            checks = []
            for actor, resource in asked:
                expected = oracle_actions(oracle, facts, actor, resource)
                body = {"actor": {"type": "User", "id": actor}, "resource": resource}
                got = api.post("/v1/actions", body)
                assert got.status == 200, got
                assert set(got.json["actions"]) == expected, (actor, resource, got.json, expected)
                action = data.draw(st.sampled_from(policy.actions[resource["type"]]))
                decided = api.post("/v1/authorize", {**body, "action": action, "explain": True})
                assert decided.json["allowed"] == (action in expected), (actor, action, resource, decided.json)
                summary = decided.json["explanation"]["summary"]
                assert (" may not " not in summary) == (action in expected), summary
                checks.append(({**body, "action": action}, action in expected))
            batch = api.post("/v1/authorize/batch", {"checks": [check for check, _ in checks]})
            assert [r["allowed"] for r in batch.json["results"]] == [want for _, want in checks]
            for actor in data.draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=3, unique=True)):
                action = data.draw(st.sampled_from(policy.actions["Account"]))
                expected_ids = sorted(
                    account
                    for account in facts.settings
                    if action in oracle_actions(oracle, facts, actor, {"type": "Account", "id": account})
                )
                listed = api.post("/v1/list", {"actor": {"type": "User", "id": actor}, "action": action, "resource_type": "Account"})
                assert listed.json["ids"] == expected_ids, (actor, action, listed.json)
                paged, token = [], None
                while True:
                    page = api.post(
                        "/v1/list",
                        {"actor": {"type": "User", "id": actor}, "action": action, "resource_type": "Account",
                         "page_size": 1, **({"page_token": token} if token else {})},
                    ).json
                    paged += page["ids"]
                    token = page["next_page_token"]
                    if token is None:
                        break
                assert paged == expected_ids
            revision, past = history[data.draw(st.integers(0, len(history) - 1))]
            for actor, resource in asked[:4]:
                expected = oracle_actions(oracle, past, actor, resource)
                body = {"actor": {"type": "User", "id": actor}, "resource": resource, "as_of_revision": revision}
                assert set(api.post("/v1/actions", body).json["actions"]) == expected, (revision, actor, resource)
        finally:
            runtime = app.extensions["authz"]
            runtime.close()
            shutil.rmtree(directory, ignore_errors=True)

    differential()


@pytest.mark.parametrize("name, source", ENFORCED, ids=[name for name, _ in ENFORCED])
def test_the_table_behind_the_matrix_is_oso_on_real_ids(name, source):
    """Every entry of the compiled table (the matrix, proofs and diffs read it) is live oso's answer on real ids."""
    from policies.situations import Names, build_world

    policy = policy_from_text(source, "policy.polar")
    oracle = new_oso(source)
    plain = {"actor": "u_1", "account": "acc_1", "resource": "r_1", "other_user": "u_2"}
    wrong = []
    for situation, granted in policy.table.items():
        actor, resource = build_world(situation, Names(**{**plain, **dict(situation.ids)}))
        live = frozenset(oracle.authorized_actions(actor, resource))
        if live != granted:
            wrong.append(f"{situation}: table {sorted(granted)}, oso {sorted(live)}")
    assert not wrong, "\n".join(wrong[:10])
