"""Ids as the compiler shows them to the policy: opaque values that report every use.

A decision depends on the ids of the people and records involved only through
what the policy does with them. When the policy is compiled, every id in the
world is a `SymbolicId`: comparing two ids of the same kind answers whether
they are the same slot of the situation (the actor and a payment method's
owner, say); comparing an id with a string literal of the policy ("u_fired")
answers from the id pattern being evaluated, and is recorded, so the compiler
can evaluate the policy again with that id equal to that literal. Anything
else a policy might do with an id (a string method, an ordering, comparing a
user's id with an account's) cannot be decided from the stored facts the same
way for every id, so it raises `UnsupportedUse` and the policy is refused.

A user's memberships on other accounts are not part of a situation. The
compiled world gives each user one membership "elsewhere", whose account id
and role are symbolic too: comparing its account id with the account in
question answers no (it is another account); anything else it is used for
is refused, and the compiler checks that it never changes an answer (see
`compiler.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

USER, ACCOUNT, RESOURCE, ROLE = "user", "account", "resource", "role"
# The slots of a situation whose ids a policy may compare with its literals.
ACTOR, ACCOUNT_SLOT, RESOURCE_SLOT, OTHER_USER = "actor", "account", "resource", "other_user"
ID_SLOTS = (ACTOR, ACCOUNT_SLOT, RESOURCE_SLOT, OTHER_USER)
ELSEWHERE = "elsewhere"  # the account of a user's membership elsewhere
SLOT_WORDS = {
    ACTOR: "the user",
    ACCOUNT_SLOT: "the account",
    RESOURCE_SLOT: "the resource",
    OTHER_USER: "the other user",
}


_FIRST_THE_ACCOUNT = (
    ": a rule reading a membership must first compare membership.account_id with the account in question"
)


class UnsupportedUse(Exception):
    """The policy uses an id (or a membership elsewhere) in a way no situation can carry."""


@dataclass
class Observer:
    """What one evaluation of the policy did with the symbolic ids, and the id pattern it assumes.

    `pattern` maps a slot to the literal its id equals ("actor" -> "u_fired");
    slots not in it equal none of the policy's literals. The memberships
    elsewhere count themselves alive while the policy holds one (world.py).
    """

    pattern: Mapping[str, str] = field(default_factory=dict)
    compared: set[tuple[str, str]] = field(default_factory=set)
    memberships_elsewhere_alive: int = 0
    elsewhere_used: bool = False

    def equals_literal(self, slot: str, literal: str) -> bool:
        self.compared.add((slot, literal))
        return self.pattern.get(slot) == literal


class SymbolicId:
    """An id of one kind (user, account, resource, role) in one slot of a situation."""

    __slots__ = ("kind", "slot", "observer")

    def __init__(self, kind: str, slot: str, observer: Observer) -> None:
        self.kind = kind
        self.slot = slot
        self.observer = observer

    @property
    def elsewhere(self) -> bool:
        return self.slot.endswith(ELSEWHERE)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SymbolicId):
            if other.kind != self.kind:
                raise UnsupportedUse(f"compares {_name(self)} with {_name(other)}")
            if self.elsewhere and other.elsewhere:
                raise UnsupportedUse(f"compares {_name(self)} with {_name(other)}" + _FIRST_THE_ACCOUNT)
            return other.slot == self.slot
        if isinstance(other, str):
            if self.elsewhere:
                raise UnsupportedUse(f"compares {_name(self)} with {other!r}" + _FIRST_THE_ACCOUNT)
            return self.observer.equals_literal(self.slot, other)
        return False  # an id is a string: never a number, a boolean, a list or nil

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.kind, self.slot))

    def __getattr__(self, name: str):
        raise AttributeError(f"calls `{name}` on {_name(self)}: an id may only be compared with `=` or `!=`")

    def _ordering(self, other: object) -> bool:
        raise UnsupportedUse(f"orders {_name(self)} (`<`, `>`): an id may only be compared with `=` or `!=`")

    __lt__ = __le__ = __gt__ = __ge__ = _ordering

    def __repr__(self) -> str:
        return f"<{_name(self)}>"


def _name(symbol: SymbolicId) -> str:
    if symbol.kind == ROLE:
        return f"the role of {SLOT_WORDS.get(symbol.slot.removesuffix('_' + ELSEWHERE), 'a user')} on another account"
    if symbol.kind == ACCOUNT and symbol.elsewhere:
        return "the id of another account the user belongs to"
    return f"the id of {SLOT_WORDS.get(symbol.slot, symbol.slot)}"


def elsewhere_slot(user_slot: str) -> str:
    return f"{user_slot}_{ELSEWHERE}"
