"""Change-log entries in business words, for the auditor pages.

An entry as stored says `member.invite`, `{"role": null}` → `{"role": "payment_manager"}`;
an auditor reads "u_client invited u_partner as payment_manager". Each kind of
entry has one sentence; an unknown kind falls back to its name, so a new kind
of change is never hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SYSTEM = "system"
NOTHING = "—"
SHA_SHOWN = 12  # characters of a sha256 shown in a sentence; the page shows the whole value beside it


@dataclass(frozen=True)
class FieldChange:
    """One value an entry changed: its name, the value before and the value after, as text."""

    name: str
    before: str
    after: str


@dataclass(frozen=True)
class EntryInWords:
    revision: int
    at: str
    account: str | None
    sentence: str
    who: str
    api_key: str
    changes: list[FieldChange]
    hash: str


def who_asked(entry: dict[str, Any]) -> str:
    """The person a change was made for, or "system" for a trusted system change."""
    return entry.get("acting_user") or SYSTEM


def readable_time(at: str) -> str:
    """`2024-05-01T12:34:56.123456Z` → `2024-05-01 12:34:56 UTC`."""
    if len(at) >= 19 and at[10] == "T":
        return f"{at[:10]} {at[11:19]} UTC"
    return at


def _account_create(entry: dict, who: str) -> str:
    return f"{who} signed up {entry['account']} with admin {entry['after'].get('admin', entry['user'])}"


def _billing_settings(entry: dict, who: str) -> str:
    before, after, account = entry["before"], entry["after"], entry["account"]
    parts = []
    restricted = after.get("restrict_subscription_to_payment_manager")
    if restricted != before.get("restrict_subscription_to_payment_manager"):
        parts.append(
            "restricted subscription management to the payment manager"
            if restricted
            else "lifted the restriction of subscription management to the payment manager (admins manage it again)"
        )
    auto_add = after.get("auto_add_subscription_invoices_to_purchases")
    if auto_add != before.get("auto_add_subscription_invoices_to_purchases"):
        parts.append(
            f"started adding subscription invoices to {account}'s purchases"
            if auto_add
            else f"stopped adding subscription invoices to {account}'s purchases"
        )
    return f"{who} " + (" and ".join(parts) if parts else f"saved {account}'s billing settings unchanged")


def _invite(entry: dict, who: str) -> str:
    return f"{who} invited {entry['user']} as {entry['after'].get('role')}"


def _change_role(entry: dict, who: str) -> str:
    return f"{who} changed {entry['user']}'s role from {entry['before'].get('role')} to {entry['after'].get('role')}"


def _remove(entry: dict, who: str) -> str:
    return f"{who} removed {entry['user']} ({entry['before'].get('role')}) from {entry['account']}"


def _support_agent_add(entry: dict, who: str) -> str:
    return f"{who} made {entry['user']} a support agent"


def _support_agent_remove(entry: dict, who: str) -> str:
    return f"{who} withdrew {entry['user']}'s support-agent role"


def _api_key_create(entry: dict, who: str) -> str:
    after = entry["after"]
    return f"{who} created API key {after.get('key')} ({after.get('name')}) with scopes {after.get('scopes')}"


def _api_key_revoke(entry: dict, who: str) -> str:
    return f"{who} revoked API key {entry['after'].get('key')}"


def _import(entry: dict, who: str) -> str:
    """One fact of a bulk import (`authz import`): an account's settings, a role, or a support agent."""
    after = entry["after"]
    if entry["account"] is None:
        return f"{who} imported {entry['user']} as a support agent"
    if entry["user"] is None:
        return f"{who} imported account {entry['account']} ({after.get('name')})"
    return f"{who} imported {entry['user']} as {after.get('role')} of {entry['account']}"


def _policy_load(entry: dict, who: str) -> str:
    sha = str(entry["after"].get("sha256", ""))
    return f"{who} put policy {sha[:SHA_SHOWN]} in force"


def _cache_drop(entry: dict, who: str) -> str:
    return f"{who} made every process drop its cached facts and read them again from the database"


SENTENCES: dict[str, Callable[[dict, str], str]] = {
    "account.create": _account_create,
    "billing_settings.update": _billing_settings,
    "member.invite": _invite,
    "member.change_role": _change_role,
    "member.remove": _remove,
    "support_agent.add": _support_agent_add,
    "support_agent.remove": _support_agent_remove,
    "api_key.create": _api_key_create,
    "api_key.revoke": _api_key_revoke,
    "policy.load": _policy_load,
    "import": _import,
    "cache.drop": _cache_drop,
}


def sentence(entry: dict[str, Any]) -> str:
    """What happened, in business words, naming who asked."""
    who = who_asked(entry)
    describe = SENTENCES.get(entry["kind"])
    if describe is None:
        return f"{who}: {entry['kind']}"
    try:
        return describe(entry, who)
    except (KeyError, AttributeError, TypeError):  # an entry of an unexpected shape is shown, not hidden
        return f"{who}: {entry['kind']}"


def _text(value: Any) -> str:
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def field_changes(entry: dict[str, Any]) -> list[FieldChange]:
    """The values the entry changed, before → after; a recorded policy shows its sha256, never its text."""
    before = dict(entry["before"]) if isinstance(entry["before"], dict) else {}
    after = dict(entry["after"]) if isinstance(entry["after"], dict) else {}
    if entry["kind"] == "policy.load":
        return [FieldChange("policy sha256", _text(before.get("sha256")), _text(after.get("sha256")))]
    names = list(dict.fromkeys([*before, *after]))
    return [
        FieldChange(name.replace("_", " "), _text(before.get(name)), _text(after.get(name)))
        for name in names
        if before.get(name) != after.get(name)
    ]


def in_words(entry: dict[str, Any]) -> EntryInWords:
    """A change-log entry (as `Store.changes` answers it) ready for the change-log page."""
    return EntryInWords(
        revision=entry["revision"],
        at=readable_time(entry["at"]),
        account=entry["account"],
        sentence=sentence(entry),
        who=who_asked(entry),
        api_key=entry.get("api_key") or NOTHING,
        changes=field_changes(entry),
        hash=entry["hash"],
    )
