"""policy.polar against SPEC.md's rules table, in every situation a decision can be in."""

from __future__ import annotations

from policies.engine import load_policy
from policies.situations import all_situations
from policies.world import RESOURCE_TYPES
from tests.reference import ACTIONS, expected


def test_every_situation_and_action_matches_the_rules_table():
    policy = load_policy()
    mismatches = []
    checked = 0
    for resource_type in RESOURCE_TYPES:
        for situation in all_situations(resource_type):
            for action in ACTIONS[resource_type]:
                checked += 1
                got = policy.is_allowed(situation, action)
                want = expected(situation, action)
                if got != want:
                    mismatches.append(f"{action} on {situation}: policy says {got}, the rules table says {want}")
    assert not mismatches, f"{len(mismatches)} of {checked} decisions disagree:\n" + "\n".join(mismatches)
    assert checked > 2000


def test_the_policy_grants_exactly_the_actions_of_the_rules_table():
    policy = load_policy()
    assert {name: sorted(actions) for name, actions in policy.actions.items()} == {
        name: sorted(actions) for name, actions in ACTIONS.items()
    }


def test_the_table_is_what_oso_answers_for_each_situation():
    """The compiled table is a cache of oso's answers, not a second source of truth."""
    from policies.situations import Names, build_world

    policy = load_policy()
    names = Names(actor="u_1", account="acc_1", resource="r_1", other_user="u_2")
    for situation in list(policy.table)[::37]:
        actor, resource = build_world(situation, names)
        assert frozenset(policy.oso.authorized_actions(actor, resource)) == policy.table[situation]


def test_a_payment_manager_holds_no_workspace_permission_and_support_no_member_permission():
    policy = load_policy()
    workspace = {"view_workspace", "edit_workspace", "view_members", "manage_members"}
    for situation, granted in policy.table.items():
        if situation.resource_type == "Account" and situation.actor_role == "payment_manager":
            assert not granted & workspace, situation
        if situation.resource_type == "Document" and situation.actor_role in (None, "payment_manager"):
            assert not granted, situation
        if situation.resource_type in ("Account", "Membership") and situation.actor_role is None:
            assert not granted, situation
