"""A soak test with faults: `make soak` (not part of `make test`), about two minutes, traffic on 127.0.0.1 only.

Many client threads write and check against a 4-worker server (`authz serve`,
granian) on a PostgreSQL cluster of the soak's own (`bench/soak_pg.py`: the
machine's shared server is never touched). A third of the way in, the database
is stopped for a few seconds and started again; two thirds of the way in, one
worker is killed with SIGKILL. Afterwards the soak checks, against the
database itself and through the API:

- every acknowledged write (2xx with a `revision`) is in the change log with
  the same kind, account, user and after-state, and the tables hold the last
  acknowledged state (writes whose outcome was unknown are resolved by reading
  the state again, as a calling service must);
- no change in the log is unexplained (every change that was not acknowledged
  comes from a write whose outcome was unknown);
- the invariants hold on every account, revisions run 1..N without a gap, and
  `GET /v1/changes/verify` finds the log intact;
- no decision sent with `at_least_revision` was stale (each acknowledged write is
  checked at once, by the same thread, through another client and connection);
- the service recovered by itself: first successful decision, write and
  `/readyz` after each fault, and no failure in the last seconds of the run.

It writes the figures to bench/SOAK.md (overwritten each run) and keeps the
server's and PostgreSQL's logs in var/soak/. Exit status 0 only if every check
passed. `SOAK_SECONDS` and `SOAK_CLIENTS` change the length and the number of
client threads (defaults 100 s, 12).

Ownership makes the expected state exact: thread N alone changes the
memberships of its users (`u_tN_*`), on its own accounts (`acc_tN_*`) and on the
shared accounts (`acc_shared_*`, whose settings nobody changes), and alone
changes its own accounts' settings and its support agent.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import signal
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import requests

from bench.soak_pg import ThrowawayPostgres
from service.client import AuthzClient, AuthzError, Unavailable
from service.core.invariants import PAYMENT_MANAGER_PROTECTED
from tests.servers import PROJECT, RunningServer, served
from tests.support import TEST_KEY

KEY = TEST_KEY
RUN_SECONDS = float(os.environ.get("SOAK_SECONDS", "100"))
CLIENT_THREADS = int(os.environ.get("SOAK_CLIENTS", "12"))
WORKERS = 4
USERS_PER_THREAD = 6
OWN_ACCOUNTS = 3  # per thread; the first one runs the payment-manager story
SHARED_ACCOUNTS = 40 - 3 * 12  # 40 accounts in all with the default 12 threads
SHARED = [f"acc_shared_{k}" for k in range(SHARED_ACCOUNTS)]
SHARED_ADMIN = "u_shared_admin"
DB_DOWN_SECONDS = 3.0
QUIET_SECONDS = 10.0  # the end of the run must be free of failures: the service recovered by itself
RESOLVE_GIVE_UP_SECONDS = 60.0
REPORT = PROJECT / "bench" / "SOAK.md"
LOGS = PROJECT / "var" / "soak"
WORKSPACE = ("admin", "collaborator", "reader")
RESTRICT, AUTO_ADD = "restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases"
FAULT_KINDS = ("503", "connection_error", "timeout")  # what an outage may answer: never "allowed", never a 500


def now() -> float:
    return time.monotonic()


# -- what happened --------------------------------------------------------------------------------------------


@dataclass
class Ack:
    """An acknowledged write: the service answered 2xx with this revision."""

    revision: int
    kind: str
    account: str | None
    user: str | None
    after: dict
    who: str
    at: float
    request_id: str | None


@dataclass
class Unknown:
    """A write whose outcome the client cannot know (503, timeout, connection lost); resolved by reading."""

    kind: str
    account: str | None
    user: str | None
    after: dict
    who: str
    at: float
    reason: str
    resolved: str = "not resolved"


@dataclass
class Stats:
    started: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: Counter = field(default_factory=Counter)  # (endpoint, outcome) of every HTTP attempt, retries included
    outcomes: Counter = field(default_factory=Counter)  # what the callers got, after the client's retries
    timeline: defaultdict = field(default_factory=lambda: defaultdict(Counter))  # second -> outcome -> count
    attempt_timeline: defaultdict = field(default_factory=lambda: defaultdict(Counter))  # second -> HTTP outcome
    acks: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)  # expected 4xx, by status and code
    crashed: list = field(default_factory=list)

    def count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.timeline[int(now() - self.started)][outcome] += 1

    def attempt(self, endpoint: str, outcome: str) -> None:
        with self.lock:
            self.attempts[endpoint, outcome] += 1
            self.attempt_timeline[int(now() - self.started)][outcome] += 1

    def add(self, items: list, item: Any) -> None:
        with self.lock:
            items.append(item)


_TEMPLATES = [
    (re.compile(r"^/v1/accounts/[^/]+/members/[^/]+$"), "/v1/accounts/{id}/members/{user}"),
    (re.compile(r"^/v1/accounts/[^/]+/members$"), "/v1/accounts/{id}/members"),
    (re.compile(r"^/v1/accounts/[^/]+/billing-settings$"), "/v1/accounts/{id}/billing-settings"),
    (re.compile(r"^/v1/accounts/[^/]+$"), "/v1/accounts/{id}"),
    (re.compile(r"^/v1/support-agents/[^/]+$"), "/v1/support-agents/{user}"),
]


def endpoint_of(method: str, url: str) -> str:
    path = urlsplit(url).path
    for pattern, template in _TEMPLATES:
        if pattern.match(path):
            return f"{method} {template}"
    return f"{method} {path}"


class RecordingSession(requests.Session):
    """A requests session that counts every attempt (status, timeout or connection error) and keeps a trace."""

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self.stats = stats
        self.trace: list[tuple[str, str, str | None]] = []  # (endpoint, outcome, X-Request-Id) of the current call

    def request(self, method, url, *args, **kwargs):
        endpoint = endpoint_of(method, url)
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.ConnectTimeout:
            self._note(endpoint, "connect_timeout", None)
            raise
        except requests.Timeout:
            self._note(endpoint, "timeout", None)
            raise
        except requests.ConnectionError:
            self._note(endpoint, "connection_error", None)
            raise
        self._note(endpoint, str(response.status_code), response.headers.get("X-Request-Id"))
        return response

    def _note(self, endpoint: str, outcome: str, request_id: str | None) -> None:
        self.stats.attempt(endpoint, outcome)
        self.trace.append((endpoint, outcome, request_id))


def fault_kind(error: Unavailable) -> str | None:
    """What kind of outage an `Unavailable` is; None when it is not one (a 500, an unreadable answer)."""
    if error.status == 503:
        return "503"
    if error.status is None and error.code in ("connection_failed", "no_answer", "outcome_unknown"):
        return "timeout" if "Timeout" in error.message or "timed out" in error.message else "connection_error"
    return None


# -- one client thread -------------------------------------------------------------------------------------


def account(account_id: str) -> dict:
    return {"type": "Account", "id": account_id}


class ClientThread(threading.Thread):
    """Writes to what it owns, and checks each acknowledged write at once through another client."""

    def __init__(self, number: int, base: str, stats: Stats, stop: threading.Event, conninfo: str) -> None:
        super().__init__(name=f"soak-client-{number}", daemon=True)
        self.number = number
        self.stats = stats
        self.stop_event = stop
        self.conninfo = conninfo
        self.rng = random.Random(7_000 + number)
        self.admin = f"u_t{number}_admin"
        self.pm = f"u_t{number}_pm"
        self.support_user = f"u_t{number}_support"
        self.users = [f"u_t{number}_{k}" for k in range(USERS_PER_THREAD)]
        self.own = [f"acc_t{number}_{k}" for k in range(OWN_ACCOUNTS)]
        self.pm_account = self.own[0]
        self.accounts = self.own + SHARED
        # What this thread knows the state is: exact, since it alone changes it.
        self.roles: dict[tuple[str, str], str | None] = {(u, a): None for u in self.users for a in self.accounts}
        self.roles[self.pm, self.pm_account] = None
        for own in self.own:
            self.roles[self.admin, own] = "admin"
        for shared in SHARED:
            self.roles[SHARED_ADMIN, shared] = "admin"
        self.settings: dict[str, tuple[bool, bool]] = {a: (False, True) for a in self.accounts}
        self.support = False
        self.pm_tried = False  # the payment manager's removal was refused while restricted
        self.writes = AuthzClient(base, KEY, session=RecordingSession(stats), timeout=2.0, retries=3)
        self.checks = AuthzClient(base, KEY, session=RecordingSession(stats), timeout=2.0, retries=3)
        self.history: deque[str] = deque(maxlen=10)
        self.unresolved = False

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.stop_event.is_set() and not self.unresolved:
                draw = self.rng.random()
                if draw < 0.55:
                    self.membership_step()
                elif draw < 0.70:
                    self.settings_step()
                elif draw < 0.85:
                    self.payment_manager_step()
                elif draw < 0.95:
                    self.support_step()
                else:
                    self.unjudged_traffic()
        except Exception:  # a bug of the soak itself: reported, never hidden
            self.stats.add(self.stats.crashed, f"{self.name}: {traceback.format_exc()}")

    def admin_of(self, account_id: str) -> str:
        return self.admin if account_id in self.own else SHARED_ADMIN

    def membership_step(self) -> None:
        user, account_id = self.rng.choice(self.users), self.rng.choice(self.accounts)
        role, acting = self.roles[user, account_id], self.admin_of(account_id)
        if self.rng.random() < 0.05:  # a refusal this thread knows must come
            if role is None:
                self.write("member.remove", account_id, user, {"role": None},
                           lambda: self.writes.remove_member(account_id, user, acting_user=acting),
                           refusal=(404, "member_not_found"))
            else:
                self.write("member.invite", account_id, user, {"role": "reader"},
                           lambda: self.writes.invite(account_id, user, "reader", acting_user=acting),
                           refusal=(409, "already_member"))
            return
        if role is None:
            new = self.rng.choice(["reader", "collaborator"])
            revision = self.write("member.invite", account_id, user, {"role": new},
                                  lambda: self.writes.invite(account_id, user, new, acting_user=acting))
            action = "edit_workspace" if new == "collaborator" else "view_workspace"
        elif self.rng.random() < 0.5:
            new = "collaborator" if role == "reader" else "reader"
            revision = self.write("member.change_role", account_id, user, {"role": new},
                                  lambda: self.writes.change_role(account_id, user, new, acting_user=acting))
            action = "edit_workspace"
        else:
            revision = self.write("member.remove", account_id, user, {"role": None},
                                  lambda: self.writes.remove_member(account_id, user, acting_user=acting))
            action = "read"
        if revision is None:
            return
        self.check(user, action, account(account_id), revision, "after the write")
        draw = self.rng.random()
        if draw < 0.3:
            self.check_batch([(user, name, account(account_id)) for name in
                              ("read", "view_workspace", "edit_workspace", "manage_members", "view_subscription")]
                             + [(user, "view", {"type": "SubscriptionInvoice", "id": "inv_1", "account": account_id})],
                             revision)
        elif draw < 0.45:
            self.check_list(user, revision)

    def settings_step(self) -> None:
        account_id = self.rng.choice(self.own)
        restricted, auto_add = self.settings[account_id]
        if account_id != self.pm_account and self.rng.random() < 0.1:  # no payment manager there: must be refused
            self.write("billing_settings.update", account_id, None, {RESTRICT: True, AUTO_ADD: auto_add},
                       lambda: self.writes.update_billing_settings(
                           account_id, restrict_subscription_to_payment_manager=True, acting_user=self.admin),
                       refusal=(409, "no_payment_manager"))
            return
        acting = self.pm if restricted else self.admin
        revision = self.write("billing_settings.update", account_id, None, {RESTRICT: restricted, AUTO_ADD: not auto_add},
                              lambda: self.writes.update_billing_settings(
                                  account_id, auto_add_subscription_invoices_to_purchases=not auto_add,
                                  acting_user=acting))
        if revision is None:
            return
        invoice = {"type": "SubscriptionInvoice", "id": "inv_1", "account": account_id}
        members = [u for (u, a), role in self.roles.items() if a == account_id and role is not None]
        self.check_batch([(u, "view", invoice) for u in [*members, self.users[0]]], revision)

    def payment_manager_step(self) -> None:
        """The story of the source: invite the partner, restrict, (cannot remove), lift the restriction, remove."""
        acc, pm, admin = self.pm_account, self.pm, self.admin
        role = self.roles[pm, acc]
        restricted, auto_add = self.settings[acc]
        resource = account(acc)
        membership = {"type": "Membership", "account": acc, "user": pm}
        if role is None:
            self.pm_tried = False
            revision = self.write("member.invite", acc, pm, {"role": "payment_manager"},
                                  lambda: self.writes.invite(acc, pm, "payment_manager", acting_user=admin))
            if revision is not None:
                self.check_batch([(pm, "manage_subscription", resource), (pm, "view_workspace", resource),
                                  (admin, "manage_subscription", resource)], revision)
        elif not restricted and not self.pm_tried:
            revision = self.write("billing_settings.update", acc, None, {RESTRICT: True, AUTO_ADD: auto_add},
                                  lambda: self.writes.update_billing_settings(
                                      acc, restrict_subscription_to_payment_manager=True, acting_user=pm))
            if revision is not None:
                self.check(admin, "view_subscription", resource, revision, "after restricting")
                self.check_batch([(pm, "manage_subscription", resource), (admin, "remove", membership)], revision)
        elif restricted and not self.pm_tried:
            refused = self.write("member.remove", acc, pm, {"role": None},
                                 lambda: self.writes.remove_member(acc, pm, acting_user=admin),
                                 refusal=(409, "payment_manager_protected"))
            if refused is None and self.roles[pm, acc] == "payment_manager":
                self.write("member.change_role", acc, pm, {"role": "reader"},
                           lambda: self.writes.change_role(acc, pm, "reader", acting_user=admin),
                           refusal=(409, "payment_manager_protected"))
                self.pm_tried = True
        elif restricted:
            revision = self.write("billing_settings.update", acc, None, {RESTRICT: False, AUTO_ADD: auto_add},
                                  lambda: self.writes.update_billing_settings(
                                      acc, restrict_subscription_to_payment_manager=False, acting_user=pm))
            if revision is not None:
                self.check(admin, "manage_subscription", resource, revision, "after lifting the restriction")
        else:
            revision = self.write("member.remove", acc, pm, {"role": None},
                                  lambda: self.writes.remove_member(acc, pm, acting_user=admin))
            if revision is not None:
                self.check(pm, "read", resource, revision, "after removing the payment manager")

    def support_step(self) -> None:
        user, adding = self.support_user, not self.support
        kind = "support_agent.add" if adding else "support_agent.remove"
        call = (lambda: self.writes.add_support_agent(user)) if adding else (lambda: self.writes.remove_support_agent(user))
        revision = self.write(kind, None, user, {"support_agent": adding}, call)
        if revision is not None:
            method = {"type": "PaymentMethod", "id": f"pm_{self.number}", "account": self.own[1], "owner": "u_nobody"}
            self.check(user, "view", method, revision, "after the support role changed")

    def unjudged_traffic(self) -> None:
        """Decisions without `at_least_revision` and log reads: load, counted, their answers not judged."""
        try:
            self.checks.authorize(self.rng.choice(self.users), "read", account(self.rng.choice(self.accounts)))
            self.stats.count("decision.ok")
        except Unavailable as error:
            self._fault("decision", error, "unpinned decision")
        except AuthzError as error:
            self._unexpected("decision", "unpinned decision", error, self.checks.session)
        try:
            self.writes.changes(account=self.rng.choice(self.own), after=0, limit=20)
            self.stats.count("read.ok")
        except Unavailable as error:
            self._fault("read", error, "change log read")
        except AuthzError as error:
            self._unexpected("read", "change log read", error, self.writes.session)

    # -- writes ------------------------------------------------------------------------------------

    def write(
        self,
        kind: str,
        account_id: str | None,
        user: str | None,
        after: dict,
        call: Callable[[], dict],
        refusal: tuple[int, str] | None = None,
    ) -> int | None:
        """Make one write; answers its revision when acknowledged, else None (knowledge already corrected)."""
        session = self.writes.session
        session.trace = []
        started = now()
        label = f"{kind} {account_id or ''} {user or ''} -> {after}" + (f" (expecting {refusal})" if refusal else "")
        try:
            answer = call()
        except Unavailable as error:
            fault = fault_kind(error)
            if fault is None:
                self._unexpected("write", label, error, session)
            else:
                self.stats.count(f"write.{fault}")
                self.history.append(f"{started - self.stats.started:7.2f}s {label}: unknown outcome ({fault})")
            unknown = Unknown(kind, account_id, user, after, self.name, started - self.stats.started,
                              f"{error.status or 'no answer'} {error.code} after {[o for _, o, _ in session.trace]}")
            self.stats.add(self.stats.unknown, unknown)
            unknown.resolved = self.resolve(account_id, user)
            return None
        except AuthzError as error:
            if refusal == (error.status, error.code) and (
                error.code != "payment_manager_protected" or error.message == PAYMENT_MANAGER_PROTECTED
            ):
                self.stats.count("write.expected_refusal")
                with self.stats.lock:
                    self.stats.refusals[f"{error.status} {error.code}"] += 1
                self.history.append(f"{started - self.stats.started:7.2f}s {label}: refused as expected")
                return None
            self._unexpected("write", label, error, session)
            self.resolve(account_id, user)
            return None
        revision = answer["revision"]
        request_id = session.trace[-1][2] if session.trace else None
        self.stats.add(self.stats.acks, Ack(revision, kind, account_id, user, after, self.name,
                                            started - self.stats.started, request_id))
        self.stats.count("write.ack")
        self.history.append(f"{started - self.stats.started:7.2f}s {label}: acknowledged r{revision}")
        if refusal is not None:
            self._unexpected("write", label, None, session, f"accepted (r{revision}) although it had to be refused")
        self.learn(kind, account_id, user, after)
        return revision

    def learn(self, kind: str, account_id: str | None, user: str | None, after: dict) -> None:
        if kind.startswith("member."):
            self.roles[user, account_id] = after["role"]
        elif kind == "billing_settings.update":
            self.settings[account_id] = (after[RESTRICT], after[AUTO_ADD])
        elif kind.startswith("support_agent."):
            self.support = after["support_agent"]

    def resolve(self, account_id: str | None, user: str | None) -> str:
        """Read the real state after a write of unknown outcome (members, settings; support role in the database)."""
        deadline = now() + RESOLVE_GIVE_UP_SECONDS
        while True:
            try:
                if account_id is None:
                    with psycopg.connect(self.conninfo, connect_timeout=3) as connection:
                        found = connection.execute(
                            "SELECT count(*) FROM support_agents WHERE user_id = %s", (user,)
                        ).fetchone()[0]
                        revision = connection.execute("SELECT revision FROM revision_counter").fetchone()[0]
                    self.support = found == 1
                    state = f"support_agent={self.support}"
                else:
                    listed = self.writes.members(account_id)
                    roles = {member["user"]: member["role"] for member in listed["members"]}
                    for (member, acc) in self.roles:
                        if acc == account_id:
                            self.roles[member, acc] = roles.get(member)
                    revision = listed["revision"]
                    state = f"{user}={roles.get(user)}" if user else ""
                    if account_id in self.own:
                        settings = self.writes.billing_settings(account_id)
                        self.settings[account_id] = (settings[RESTRICT], settings[AUTO_ADD])
                        revision = max(revision, settings["revision"])
                        state += f" settings={self.settings[account_id]}"
                self.stats.count("read.ok")
                break
            except (AuthzError, psycopg.Error) as error:
                self.stats.count("read.error")
                if now() > deadline:
                    self.unresolved = True
                    self.stats.add(self.stats.crashed, f"{self.name}: could not read the state of {account_id} "
                                                       f"{user} for {RESOLVE_GIVE_UP_SECONDS:.0f} s: {error}")
                    return "not resolved"
                time.sleep(0.25)
        self.history.append(f"{now() - self.stats.started:7.2f}s resolved {account_id} {user}: {state} at r{revision}")
        # What was read at `revision` must be what decisions at least that fresh say.
        if user is not None and account_id is not None:
            self.check(user, "read", account(account_id), revision, "after resolving an unknown outcome")
        elif user is not None:
            method = {"type": "PaymentMethod", "id": "pm_x", "account": self.own[1], "owner": "u_nobody"}
            self.check(user, "view", method, revision, "after resolving an unknown outcome")
        return f"{state.strip()} (read at r{revision})"

    # -- decisions ---------------------------------------------------------------------------------

    def expected(self, user: str, action: str, resource: dict) -> bool:
        """The policy's answer on the state this thread knows (see SPEC.md's table)."""
        account_id = resource["id"] if resource["type"] == "Account" else resource["account"]
        role = self.roles.get((user, account_id))
        restricted, auto_add = self.settings[account_id]
        manager = role == "payment_manager" or (role == "admin" and not restricted)
        if resource["type"] == "Account":
            return {
                "read": role is not None,
                "view_workspace": role in WORKSPACE,
                "edit_workspace": role in ("admin", "collaborator"),
                "view_members": role == "admin",
                "manage_members": role == "admin",
            }.get(action, manager)
        if resource["type"] == "SubscriptionInvoice":
            return manager or (auto_add and role in WORKSPACE)
        if resource["type"] == "PaymentMethod":
            return manager or (user == self.support_user and self.support)
        if resource["type"] == "Membership":
            member_role = self.roles.get((resource["user"], account_id))
            return role == "admin" and member_role is not None and not (member_role == "payment_manager" and restricted)
        raise ValueError(resource)

    def check(self, user: str, action: str, resource: dict, floor: int, why: str) -> None:
        expected = self.expected(user, action, resource)
        session = self.checks.session
        session.trace = []
        try:
            decision = self.checks.authorize(user, action, resource, at_least_revision=floor)
        except Unavailable as error:
            self._fault("decision", error, f"{user} {action} {resource} at least r{floor}")
            return
        except AuthzError as error:
            self._unexpected("decision", f"{user} {action} {resource} at least r{floor}", error, session)
            return
        self.stats.count("decision.ok")
        if decision.allowed != expected or decision.revision < floor:
            self._stale(why, floor, [(user, action, resource, expected, decision.allowed)], decision.revision, session)

    def check_batch(self, checks: list[tuple[str, str, dict]], floor: int) -> None:
        expected = [self.expected(user, action, resource) for user, action, resource in checks]
        session = self.checks.session
        session.trace = []
        try:
            answers = self.checks.authorize_batch(checks, at_least_revision=floor)
        except Unavailable as error:
            self._fault("decision", error, f"batch of {len(checks)} at least r{floor}")
            return
        except AuthzError as error:
            self._unexpected("decision", f"batch of {len(checks)} at least r{floor}", error, session)
            return
        self.stats.count("decision.ok")
        wrong = [(*check, want, got) for check, want, got in zip(checks, expected, answers, strict=True) if want != got]
        if wrong:
            self._stale("batch after the write", floor, wrong, None, session)

    def check_list(self, user: str, floor: int) -> None:
        expected = sorted(a for (u, a), role in self.roles.items() if u == user and role is not None)
        session = self.checks.session
        session.trace = []
        try:
            ids = self.checks.list(user, "read", at_least_revision=floor)
        except Unavailable as error:
            self._fault("decision", error, f"list for {user} at least r{floor}")
            return
        except AuthzError as error:
            self._unexpected("decision", f"list for {user} at least r{floor}", error, session)
            return
        self.stats.count("decision.ok")
        if ids != expected:
            self._stale("list after the write", floor, [(user, "read", "Account (list)", expected, ids)], None, session)

    # -- recording ---------------------------------------------------------------------------------

    def _fault(self, what: str, error: Unavailable, label: str) -> None:
        fault = fault_kind(error)
        if fault is None:
            self._unexpected(what, label, error, self.checks.session if what == "decision" else self.writes.session)
        else:
            self.stats.count(f"{what}.{fault}")

    def _stale(self, why: str, floor: int, wrong: list, revision: int | None, session: RecordingSession) -> None:
        self.stats.count("decision.stale")
        self.stats.add(self.stats.stale, {
            "thread": self.name, "at": round(now() - self.stats.started, 2), "why": why, "at_least_revision": floor,
            "answered_revision": revision, "wrong (user, action, resource, expected, answered)": wrong,
            "requests": list(session.trace), "history": list(self.history),
        })

    def _unexpected(self, what: str, label: str, error: AuthzError | None, session: RecordingSession,
                    note: str = "") -> None:
        self.stats.count(f"{what}.unexpected")
        self.stats.add(self.stats.unexpected, {
            "thread": self.name, "at": round(now() - self.stats.started, 2), "what": what, "request": label,
            "answer": note or (f"{error.status} {error.code}: {error.message[:300]}" if error else ""),
            "attempts": list(session.trace), "history": list(self.history),
        })


# -- the server and the faults -----------------------------------------------------------------------------


@dataclass
class Server:
    """The server under soak (tests.servers.RunningServer), and what the faults need to know of it."""

    running: RunningServer

    @property
    def base(self) -> str:
        return self.running.base

    def workers(self) -> set[int]:
        """The master's children (its workers)."""
        return set(self.running.worker_pids())

    def database_connections(self, database_port: int) -> dict[int, int]:
        """{local port of a connection to the database: the worker holding it}, from /proc."""
        established: dict[str, int] = {}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == database_port:
                established[f"socket:[{fields[9]}]"] = int(fields[1].rsplit(":", 1)[1], 16)
        ports = {}
        for pid in self.workers():
            try:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    port = established.get(os.readlink(fd))
                    if port is not None:
                        ports[port] = pid
            except OSError:
                continue
        return ports

    def kill_worker_mid_write(self, pg: ThrowawayPostgres, seconds: float) -> tuple[int, str, float] | None:
        """SIGKILL a worker while it is inside a write transaction; answers (pid, what PostgreSQL showed, when).

        A worker seen running a write statement is frozen (SIGSTOP); once its
        backend waits for it (`idle in transaction`, same transaction), it is
        killed: the transaction was open when the worker died. If the
        transaction ended before the worker froze, it is let go (SIGCONT) and
        the search goes on. None if no worker was caught within `seconds`.
        """
        deadline = now() + seconds
        ports = self.database_connections(pg.port)  # pooled connections live long: mapped once, refreshed on a miss
        with psycopg.connect(pg.conninfo, autocommit=True) as connection:
            while now() < deadline:
                rows = connection.execute(
                    "SELECT client_port, pid, xact_start FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                    " AND state IN ('active', 'idle in transaction')"
                    " AND (query ILIKE '%FOR UPDATE%' OR query ~* '^\\s*(INSERT|UPDATE|DELETE)' OR query ILIKE '%pg_notify%')"
                ).fetchall()
                for client_port, backend, started in rows:
                    worker = ports.get(client_port)
                    if worker is None:
                        ports = self.database_connections(pg.port)
                        continue
                    os.kill(worker, signal.SIGSTOP)
                    for _ in range(500):
                        row = connection.execute(
                            "SELECT state, xact_start, CASE WHEN length(q) > 110 THEN left(q, 60) || ' ... ' || right(q, 45)"
                            " ELSE q END FROM (SELECT state, xact_start, regexp_replace(query, '\\s+', ' ', 'g') AS q"
                            " FROM pg_stat_activity WHERE pid = %s) AS session", (backend,)
                        ).fetchone()
                        if row is None or row[1] != started:
                            break  # that transaction ended before the worker froze
                        if row[0] == "idle in transaction":
                            os.kill(worker, signal.SIGKILL)
                            return worker, f"{row[0]}: {row[2]}", now()
                        time.sleep(0.001)
                    os.kill(worker, signal.SIGCONT)
                time.sleep(0.002)
        return None


@contextmanager
def serve(database_url: str, workers: int, log: Path) -> Iterator[Server]:
    """`authz serve` as the tests start it, its output kept in `log`."""
    with served(database_url, workers, log_path=log) as running:
        yield Server(running)


class RecoveryProbe(threading.Thread):
    """From a fault on, tries a decision, a write and /readyz every 50 ms, until each has succeeded once after it.

    `first[what]`: seconds from the fault to the first success of a request
    sent once the fault was over (`back_at`: the database started again; for a
    killed worker, the kill itself). `during` counts the answers before that,
    `after` the failures between `back_at` and each first success.
    """

    def __init__(self, name: str, base: str, stats: Stats, fault_at: float, floor: int, back_at: float | None) -> None:
        super().__init__(name=f"probe-{name}", daemon=True)
        self.label, self.base, self.stats, self.fault_at, self.floor = name, base, stats, fault_at, floor
        self.back_at = back_at
        self.first: dict[str, float | None] = {"decision": None, "write": None, "readyz": None}
        self.during: Counter = Counter()
        self.after: Counter = Counter()
        self.last_allowed_during: float | None = None  # the last decision answered 200 while the database was down
        self.session = requests.Session()

    def run(self) -> None:
        attempt = 0
        while None in self.first.values() and now() - self.fault_at < 60:
            attempt += 1
            for what in ("decision", "write", "readyz"):
                if self.first[what] is None:
                    self._try(what, f"u_probe_{self.label}_{attempt}")
            time.sleep(0.05)

    def _send(self, what: str, user: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {KEY}"}
        if what == "decision":
            body = {"actor": {"type": "User", "id": SHARED_ADMIN}, "action": "read", "resource": account(SHARED[0]),
                    "at_least_revision": self.floor}
            return self.session.post(self.base + "/v1/authorize", json=body, headers=headers, timeout=2)
        if what == "write":
            return self.session.put(f"{self.base}/v1/support-agents/{user}", headers=headers, timeout=2)
        return self.session.get(self.base + "/readyz", timeout=2)

    def _try(self, what: str, user: str) -> None:
        sent = now()
        over = self.back_at is not None and sent >= self.back_at
        tally = self.after if over else self.during
        at = round(sent - self.stats.started, 2)
        try:
            answer = self._send(what, user)
        except requests.RequestException as error:
            tally[what, type(error).__name__] += 1
            if what == "write":
                self.stats.add(self.stats.unknown, Unknown("support_agent.add", None, user, {"support_agent": True},
                                                           self.name, at, type(error).__name__))
            return
        status = answer.status_code
        if what == "decision" and status == 200 and answer.json().get("allowed") is not True:
            self.stats.add(self.stats.stale, {"thread": self.name, "at": at, "why": "probe",
                                              "at_least_revision": self.floor, "answer": answer.text[:300]})
            tally[what, "200 not allowed"] += 1
            return
        if status != 200:
            tally[what, str(status)] += 1
            if status == 503 and what == "write":
                self.stats.add(self.stats.unknown, Unknown("support_agent.add", None, user, {"support_agent": True},
                                                           self.name, at, "503"))
            elif status != 503:
                self.stats.add(self.stats.unexpected, {"thread": self.name, "at": at, "what": what,
                                                       "answer": f"{status} {answer.text[:300]}"})
            return
        if what == "write":
            self.stats.add(self.stats.acks, Ack(answer.json()["revision"], "support_agent.add", None, user,
                                                {"support_agent": True}, self.name, at,
                                                answer.headers.get("X-Request-Id")))
        if over:
            self.first[what] = now() - self.fault_at
        else:
            tally[what, "200"] += 1
            if what == "decision":
                self.last_allowed_during = now() - self.fault_at


# -- seeding, checking ---------------------------------------------------------------------------------------


def seed(base: str, stats: Stats, threads: int) -> int:
    client = AuthzClient(base, KEY, session=RecordingSession(stats))
    revision = 0
    for number in range(threads):
        for k in range(OWN_ACCOUNTS):
            revision = client.create_account(f"acc_t{number}_{k}", f"Entreprise {number}-{k}", f"u_t{number}_admin")["revision"]
    for shared in SHARED:
        revision = client.create_account(shared, f"Cabinet {shared}", SHARED_ADMIN)["revision"]
    return revision


def verify(pg: ThrowawayPostgres, base: str, stats: Stats, clients: list[ClientThread], seeded: int) -> dict:
    """Every check of the brief, against the database itself and through the API."""
    problems: dict[str, list] = defaultdict(list)
    with psycopg.connect(pg.conninfo) as connection:
        changes = {row[0]: row for row in connection.execute(
            "SELECT revision, kind, account_id, user_id, after FROM changes ORDER BY revision")}
        count, highest = connection.execute("SELECT count(*), coalesce(max(revision), 0) FROM changes").fetchone()
        counter = connection.execute("SELECT revision FROM revision_counter WHERE id = 1").fetchone()[0]
        memberships = {(user, acc): role for acc, user, role in connection.execute(
            "SELECT account_id, user_id, role FROM memberships")}
        accounts = {acc: (restrict, auto_add) for acc, restrict, auto_add in connection.execute(
            f"SELECT id, {RESTRICT}, {AUTO_ADD} FROM accounts")}
        agents = {row[0] for row in connection.execute("SELECT user_id FROM support_agents")}
        invariants = connection.execute(
            f"""SELECT a.id,
                   count(*) FILTER (WHERE m.role = 'admin') AS admins,
                   count(*) FILTER (WHERE m.role = 'payment_manager') AS payment_managers,
                   a.{RESTRICT}
                FROM accounts a LEFT JOIN memberships m ON m.account_id = a.id GROUP BY a.id"""
        ).fetchall()

    # Revisions 1..N, no gap, and the counter agrees.
    if not (count == highest == counter and sorted(changes) == list(range(1, highest + 1))):
        problems["revisions"].append(f"count {count}, max {highest}, revision_counter {counter}")

    # Every acknowledged write is in the log, as it was acknowledged.
    seen: dict[int, Ack] = {}
    for ack in stats.acks:
        if ack.revision in seen:
            problems["lost"].append(f"r{ack.revision} acknowledged twice: {seen[ack.revision]} and {ack}")
        seen[ack.revision] = ack
        row = changes.get(ack.revision)
        if row is None:
            problems["lost"].append(f"r{ack.revision} ({ack.kind} {ack.account} {ack.user}) is not in the log")
        elif (row[1], row[2], row[3], json.loads(row[4])) != (ack.kind, ack.account, ack.user, ack.after):
            problems["lost"].append(f"r{ack.revision} acknowledged as {ack.kind} {ack.account} {ack.user} {ack.after}, "
                                    f"logged as {row[1]} {row[2]} {row[3]} {row[4]}")

    # Every change after the seeding that nobody acknowledged comes from a write of unknown outcome.
    unknown = Counter((u.kind, u.account, u.user) for u in stats.unknown)
    unacknowledged = []
    for revision, kind, acc, user, _after in changes.values():
        if revision <= seeded or revision in seen or kind == "policy.load":
            continue
        unacknowledged.append(revision)
        if unknown[kind, acc, user] > 0:
            unknown[kind, acc, user] -= 1
        else:
            problems["unexplained"].append(f"r{revision} {kind} {acc} {user} was neither acknowledged "
                                           "nor the outcome of a write of unknown outcome")

    # The tables hold what each thread last knew (acknowledged writes, unknown outcomes resolved by reading).
    for client in clients:
        for (user, acc), role in client.roles.items():
            if memberships.get((user, acc)) != role:
                problems["state"].append(f"{user} on {acc}: {client.name} knows {role}, "
                                         f"the table holds {memberships.get((user, acc))}")
        for acc, settings in client.settings.items():
            if accounts.get(acc) != settings:
                problems["state"].append(f"{acc} settings: {client.name} knows {settings}, the table holds {accounts.get(acc)}")
        if (client.support_user in agents) != client.support:
            problems["state"].append(f"{client.support_user} support agent: {client.name} knows {client.support}")
    for ack in stats.acks:
        if ack.who.startswith("probe") and ack.user not in agents:
            problems["state"].append(f"probe write r{ack.revision}: {ack.user} is not a support agent")

    # The invariants, on every account.
    for acc, admins, payment_managers, restricted in invariants:
        if admins < 1:
            problems["invariants"].append(f"{acc} has no admin")
        if payment_managers > 1:
            problems["invariants"].append(f"{acc} has {payment_managers} payment managers")
        if restricted and payment_managers == 0:
            problems["invariants"].append(f"{acc} is restricted without a payment manager")

    # The change log's own check, through the API.
    verification = requests.get(base + "/v1/changes/verify", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    verified = verification.json() if verification.status_code == 200 else {"status": verification.status_code}
    if not (verified.get("ok") is True and not verified.get("drift")):
        problems["changes_verify"].append(str(verified)[:500])

    # Every worker decides on the final state, at the final revision.
    final_checks = 0
    checker = AuthzClient(base, KEY, retries=5)
    for client in clients:
        checks = [(user, action, account(acc)) for (user, acc) in client.roles
                  for action in ("read", "edit_workspace", "manage_subscription")]
        for _ in range(WORKERS):
            answers = checker.authorize_batch(checks, at_least_revision=highest)
            final_checks += len(checks)
            for check, answer in zip(checks, answers, strict=True):
                if answer != client.expected(*check):
                    problems["final_decisions"].append(f"{check}: answered {answer} at r{highest}")
    return {
        "problems": dict(problems), "changes": count, "highest": highest, "counter": counter,
        "unacknowledged_changes": len(unacknowledged), "verify": verified, "final_checks": final_checks,
    }


def scan_server_log(log: Path) -> dict:
    """500s, unexpected errors and worker deaths in the server's output."""
    found: Counter = Counter()
    samples: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if any(sign in line for sign in ("Unexpected exit from worker", "Respawning worker", "crash loop", "Traceback")):
                found[re.sub(r"\d+", "N", line.split("] ", 2)[-1])[:80]] += 1
            continue
        status = entry.get("status")
        if isinstance(status, int) and status >= 500:
            found[f"HTTP {status} {entry.get('route')}"] += 1
        if entry.get("level") in ("error", "critical") or entry.get("message") == "unexpected error":
            found[f"{entry.get('level')}: {entry.get('message')}"] += 1
            if len(samples) < 5:
                samples.append(line[:2000])
    return {"events": found, "samples": samples}


# -- the run -------------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{memory / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": ", ".join(f"{name} {metadata.version(name)}" for name in ("granian", "flask", "sqlalchemy", "psycopg", "oso")),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def run() -> dict:
    result: dict[str, Any] = {"machine": machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "seconds": RUN_SECONDS, "clients": CLIENT_THREADS, "workers": WORKERS, "faults": {}}
    LOGS.mkdir(parents=True, exist_ok=True)
    server_log = LOGS / "server.log"
    pg = ThrowawayPostgres()
    wall = now()
    try:
        pg.create()
        result["postgresql"] = pg.server_version()
        with serve(pg.url, WORKERS, server_log) as server:
            stats = Stats(started=now())
            result["stats"] = stats
            seeded = seed(server.base, stats, CLIENT_THREADS)
            result["seeded_revision"] = seeded
            stop = threading.Event()
            clients = [ClientThread(n, server.base, stats, stop, pg.conninfo) for n in range(CLIENT_THREADS)]
            stats.started = now()
            stats.timeline.clear()
            stats.attempt_timeline.clear()
            for client in clients:
                client.start()

            def highest_ack() -> int:
                with stats.lock:
                    return max((ack.revision for ack in stats.acks), default=seeded)

            time.sleep(RUN_SECONDS / 3)
            # Fault 1: the database stops (fast: every session cut), stays down, starts again.
            floor = highest_ack()
            stopping = now()
            pg.stop("fast")
            stopped = now()
            probe = RecoveryProbe("db", server.base, stats, stopped, floor, back_at=None)
            probe.start()
            time.sleep(DB_DOWN_SECONDS)
            probe.back_at = starting = now()  # what the probe sends from here on counts as recovery
            pg.start()
            started = now()
            probe.join(65)
            result["faults"]["database restart"] = {
                "at": stopping - stats.started, "stop took": stopped - stopping, "down": starting - stopped,
                "start took": started - starting, "first": dict(probe.first),
                "after restart": {k: (v - (starting - stopped) if v is not None else None) for k, v in probe.first.items()},
                "during": dict(probe.during), "after": dict(probe.after),
                "last allowed during": probe.last_allowed_during,
            }
            time.sleep(max(0.0, stats.started + 2 * RUN_SECONDS / 3 - now()))
            # Fault 2: one worker killed with SIGKILL; the master (granian) must replace it.
            # The victim: a worker killed inside a write transaction (a crash mid-write), else one at random.
            before = server.workers()
            floor = highest_ack()
            caught = server.kill_worker_mid_write(pg, 10.0)
            if caught is not None:
                victim, doing, killed = caught
            else:
                victim, doing = random.Random(1).choice(sorted(before)), None
                killed = now()
                os.kill(victim, signal.SIGKILL)
            probe = RecoveryProbe("kill", server.base, stats, killed, floor, back_at=killed)
            probe.start()
            replaced = None
            while now() - killed < 30:
                current = server.workers()
                if victim not in current and len(current) >= WORKERS and current - before:
                    replaced = now() - killed
                    break
                time.sleep(0.02)
            probe.join(65)
            result["faults"]["worker kill"] = {
                "at": killed - stats.started, "victim": victim, "doing": doing, "workers before": sorted(before),
                "workers after": sorted(server.workers()), "replaced after": replaced,
                "first": dict(probe.first), "after": dict(probe.after),
            }
            time.sleep(max(0.0, stats.started + RUN_SECONDS - now()))
            stop.set()
            ended = now()
            for client in clients:
                client.join(RESOLVE_GIVE_UP_SECONDS + 30)
            result["run seconds"] = ended - stats.started
            result["still running"] = [client.name for client in clients if client.is_alive()]
            result["verification"] = verify(pg, server.base, stats, clients, seeded)
            result["final readyz"] = requests.get(server.base + "/readyz", timeout=5).status_code
            result["machine"]["load average at the end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except Exception:
        result["aborted"] = traceback.format_exc()
    finally:
        pg.close(keep_log=LOGS / "postgresql.log")
        result["wall seconds"] = now() - wall
        if server_log.exists():
            result["server log"] = scan_server_log(server_log)
    return result


# -- the report ----------------------------------------------------------------------------------------------


def failures_of(result: dict) -> list[str]:
    failures = []
    if "aborted" in result:
        failures.append("the soak did not run to its end (see Aborted)")
    stats: Stats | None = result.get("stats")
    if stats is None:
        return failures
    if stats.stale:
        failures.append(f"{len(stats.stale)} stale decisions")
    if stats.crashed:
        failures.append(f"{len(stats.crashed)} client threads stopped on an error of their own")
    if stats.unexpected:
        failures.append(f"{len(stats.unexpected)} unexpected answers")
    for name, problems in result.get("verification", {}).get("problems", {}).items():
        failures.append(f"{len(problems)} {name} problems")
    for fault, figures in result.get("faults", {}).items():
        if None in figures["first"].values():
            failures.append(f"no recovery after the {fault} within 60 s: {figures['first']}")
    if result.get("faults", {}).get("worker kill", {}).get("replaced after", 0) is None:
        failures.append("the killed worker was not replaced within 30 s")
    end = result.get("run seconds", 0)
    quiet = [second for second, outcomes in stats.timeline.items() if second >= end - QUIET_SECONDS
             and any(count and not name.endswith((".ok", ".ack", ".expected_refusal")) for name, count in outcomes.items())]
    if quiet:
        failures.append(f"failures in the last {QUIET_SECONDS:.0f} s of the run (seconds {sorted(quiet)})")
    if result.get("still running"):
        failures.append(f"client threads still running: {result['still running']}")
    if result.get("final readyz") not in (None, 200):
        failures.append(f"/readyz answered {result['final readyz']} at the end")
    events = result.get("server log", {}).get("events", {})
    errors_500 = sum(count for name, count in events.items() if name.startswith("HTTP 5") and not name.startswith("HTTP 503"))
    if errors_500:
        failures.append(f"{errors_500} HTTP 5xx other than 503 in the server log")
    return failures


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def write_report(result: dict, failures: list[str]) -> None:
    stats: Stats | None = result.get("stats")
    lines = ["# Soak test with faults", ""]
    lines += [
        f"Generated by `make soak` (`.venv/bin/python -m bench.soak`, bench/soak.py) on {result['date']}; "
        "overwritten by each run. Every number below was measured by that run on this machine.", "",
        f"**Result: {'PASSED' if not failures else 'FAILED'}**" + ("" if not failures else ": " + "; ".join(failures)), "",
        "## Set-up", "",
        "| | |", "|---|---|",
    ]
    for name, value in result["machine"].items():
        lines.append(f"| {name} | {value} |")
    lines += [
        f"| PostgreSQL | {result.get('postgresql', '?')}, a throwaway cluster of the soak's own on 127.0.0.1 (bench/soak_pg.py) |",
        f"| server | `authz serve`: granian, {result['workers']} workers of {os.environ.get('AUTHZ_THREADS', '2')} threads, on 127.0.0.1 |",
        f"| clients | {result['clients']} threads in one process, each with two `service.client.AuthzClient`s "
        "(one for writes, one for checks; timeout 2 s, 3 retries) |",
        f"| run | {result.get('run seconds', 0):.1f} s of traffic (asked: {result['seconds']:.0f} s); "
        f"{result.get('wall seconds', 0):.0f} s in all with set-up and checks |",
        f"| data | {OWN_ACCOUNTS * result['clients'] + SHARED_ACCOUNTS} accounts seeded through the API; "
        f"each thread owns {USERS_PER_THREAD} users, {OWN_ACCOUNTS} accounts, a payment manager and a support agent |",
        "| faults | at 1/3 the database is stopped (`pg_ctl -m fast stop`: every session cut), "
        f"left down {DB_DOWN_SECONDS:.0f} s, started; at 2/3 SIGKILL to a granian worker caught inside a write transaction |",
        "",
    ]
    if "aborted" in result:
        lines += ["## Aborted", "", "```", result["aborted"].strip()[-4000:], "```", ""]
    if stats is not None:
        lines += _traffic(stats) + _faults(result, stats) + _checks(result, stats) + _timeline(stats, result)
        lines += _evidence(stats)
    log = result.get("server log")
    if log:
        lines += ["## The server's log", "",
                  "Scanned for 5xx answers, errors and worker events (the full log: var/soak/server.log; "
                  "PostgreSQL's: var/soak/postgresql.log).", ""]
        lines += [f"- {name}: {count}" for name, count in sorted(log["events"].items())] or ["- nothing"]
        if log["samples"]:
            lines += ["", "```", *log["samples"], "```"]
        lines.append("")
    lines += ["## Reading", "", reading(result, failures), ""]
    REPORT.write_text("\n".join(lines))


def _traffic(stats: Stats) -> list[str]:
    outcomes = stats.outcomes
    total = sum(stats.attempts.values())
    lines = ["## Requests", "",
             f"{total} HTTP requests from the client threads and the seeding (every attempt, the client's retries "
             "included), by endpoint and answer:", "",
             "| endpoint | answers |", "|---|---|"]
    by_endpoint: dict[str, Counter] = defaultdict(Counter)
    for (endpoint, outcome), count in stats.attempts.items():
        by_endpoint[endpoint][outcome] += count
    for endpoint in sorted(by_endpoint, key=lambda e: -sum(by_endpoint[e].values())):
        answers = ", ".join(f"{outcome}: {count}" for outcome, count in sorted(by_endpoint[endpoint].items()))
        lines.append(f"| `{endpoint}` | {answers} |")
    by_status: Counter = Counter()
    for (_endpoint, outcome), count in stats.attempts.items():
        by_status[outcome] += count
    lines += ["", "By answer: " + ", ".join(f"{outcome}: {count}" for outcome, count in sorted(by_status.items())), ""]
    lines += ["What the callers got, after the client's retries:", "",
              "| | count |", "|---|---|"]
    names = [
        ("decisions answered (checked ones judged against the known state)", "decision.ok"),
        ("decisions refused with 503 (fail-closed: counted as not allowed)", "decision.503"),
        ("decisions with a connection error (fail-closed)", "decision.connection_error"),
        ("decisions timed out (fail-closed)", "decision.timeout"),
        ("decisions answered with an unexpected status", "decision.unexpected"),
        ("**stale decisions** (at_least_revision answered from older facts)", "decision.stale"),
        ("writes acknowledged (2xx with a revision)", "write.ack"),
        ("writes refused as the thread knew they must be (409/404)", "write.expected_refusal"),
        ("writes answered 503: outcome unknown, state read again", "write.503"),
        ("writes with a connection error: outcome unknown, state read again", "write.connection_error"),
        ("writes timed out: outcome unknown, state read again", "write.timeout"),
        ("writes answered with an unexpected status", "write.unexpected"),
        ("state reads (GET members / billing-settings / changes)", "read.ok"),
        ("state reads that failed (retried until the state was known)", "read.error"),
    ]
    lines += [f"| {label} | {outcomes.get(name, 0)} |" for label, name in names]
    probe_acks = sum(1 for ack in stats.acks if ack.who.startswith("probe"))
    lines += ["", f"Expected refusals: {dict(stats.refusals) or 'none'}. The recovery probes add "
              f"{probe_acks} acknowledged writes (they are checked like the others).", ""]
    return lines


def _attempts_failed(stats: Stats, fault_at: float, window: int = 5) -> str:
    """The client threads' HTTP attempts that failed in the `window` seconds from a fault, by kind."""
    failed: Counter = Counter()
    for second in range(int(fault_at), int(fault_at) + window):
        for outcome, count in stats.attempt_timeline.get(second, {}).items():
            if not outcome.startswith(("2", "4")):
                failed[outcome] += count
    return ", ".join(f"{outcome}: {count}" for outcome, count in sorted(failed.items())) or "none"


def _tally(counts: dict) -> str:
    return ", ".join(f"{what} {outcome}: {count}" for (what, outcome), count in sorted(counts.items())) or "none"


def _faults(result: dict, stats: Stats) -> list[str]:
    lines = ["## Faults and recovery", "",
             "A probe starts at the fault and tries, every 50 ms, a decision with `at_least_revision` (on a fact that "
             "does not change: the answer must be allowed), a write (`PUT /v1/support-agents/...`, a new user each "
             "time) and `GET /readyz`, until each has succeeded once after the fault is over. Nothing is restarted "
             "by hand: the service must recover by itself.", ""]
    database = result["faults"].get("database restart")
    if database:
        first, after = database["first"], database["after restart"]
        last = database["last allowed during"]
        lines += [
            f"**Database restart** at {database['at']:.1f} s: `pg_ctl stop -m fast` took {database['stop took']:.2f} s "
            f"(every session cut), the database stayed down {database['down']:.2f} s, then `pg_ctl start -w` took "
            f"{database['start took']:.2f} s.", "",
            f"While it was down (from the end of the stop to `pg_ctl start`) the probe got: {_tally(database['during'])}. "
            + ("No decision was answered once the database was gone. " if last is None else
               f"The last decision answered 200 came {last:.2f} s after the stop (the design answers from facts "
               "that were current when the worker last heard from the database, for at most about a second). "),
            "",
            "| first success | from the stop | from `pg_ctl start` |", "|---|---|---|",
            f"| decision | {seconds(first['decision'])} | {seconds(after['decision'])} |",
            f"| write | {seconds(first['write'])} | {seconds(after['write'])} |",
            f"| `/readyz` 200 | {seconds(first['readyz'])} | {seconds(after['readyz'])} |", "",
            f"Probe failures after `pg_ctl start`: {_tally(database['after'])}. "
            f"The client threads' HTTP attempts that failed in the 5 s from the stop: "
            f"{_attempts_failed(stats, database['at'])}.", "",
        ]
    kill = result["faults"].get("worker kill")
    if kill:
        first = kill["first"]
        lines += [
            f"**Worker killed** (SIGKILL to pid {kill['victim']}, "
            + (f"frozen inside a write transaction, then killed; PostgreSQL showed its session as `{kill['doing']}`"
               if kill["doing"] else "chosen at random: no worker was caught inside a write within 10 s")
            + f") at {kill['at']:.1f} s; workers before "
            f"{kill['workers before']}, after {kill['workers after']}; the master had started a replacement "
            f"after {seconds(kill['replaced after'])}.", "",
            "| first success | from the kill |", "|---|---|",
            f"| decision | {seconds(first['decision'])} |", f"| write | {seconds(first['write'])} |",
            f"| `/readyz` 200 | {seconds(first['readyz'])} |", "",
            f"Probe failures: {_tally(kill['after'])}. The client threads' HTTP attempts that failed in the 5 s "
            f"from the kill: {_attempts_failed(stats, kill['at'])}.", "",
        ]
    return lines


def _checks(result: dict, stats: Stats) -> list[str]:
    verification = result.get("verification")
    if verification is None:
        return ["## Checks", "", "Not run (the soak stopped before).", ""]
    problems = verification["problems"]
    unknown = len(stats.unknown)
    probes = sum(1 for u in stats.unknown if u.who.startswith("probe"))
    acks = len(stats.acks)
    rows = [
        ("acknowledged writes", acks, None),
        ("**lost acknowledged writes** (not in the log as acknowledged)", len(problems.get("lost", [])), 0),
        (f"writes of unknown outcome: {unknown - probes} from the client threads (resolved by reading the state), "
         f"{probes} from the recovery probes", unknown, None),
        ("... of which found applied in the log (changes nobody acknowledged)", verification["unacknowledged_changes"], None),
        ("changes in the log explained by no write", len(problems.get("unexplained", [])), 0),
        ("(user, account) roles, settings and support roles differing from the known state",
         len(problems.get("state", [])), 0),
        ("**invariant violations** (>= 1 admin, <= 1 payment manager, restricted => payment manager)",
         len(problems.get("invariants", [])), 0),
        (f"revisions 1..N without a gap (N = {verification['highest']}, count(*) = {verification['changes']}, "
         f"revision_counter = {verification['counter']})", "yes" if "revisions" not in problems else "NO", "yes"),
        (f"`GET /v1/changes/verify` (ok: {verification['verify'].get('ok')}, entries: "
         f"{verification['verify'].get('entries')}, drift: {verification['verify'].get('drift')})",
         "intact" if "changes_verify" not in problems else "NOT INTACT", "intact"),
        ("**stale decisions** during the run", len(stats.stale), 0),
        (f"final decisions at the last revision that differ from the state ({verification['final_checks']} checked, "
         "the batch sent 4 times, as many as workers; which worker answers each is up to the kernel)", len(problems.get("final_decisions", [])), 0),
        ("unexpected answers (neither the expected status nor an outage's 503, timeout or connection error)",
         len(stats.unexpected), 0),
    ]
    lines = ["## Checks", "", "| check | found | must be |", "|---|---|---|"]
    lines += [f"| {label} | {found} | {'' if must is None else must} |" for label, found, must in rows]
    lines.append("")
    for name, items in problems.items():
        lines += [f"### Problems: {name}", "", *[f"- {item}" for item in items[:30]], ""]
    return lines


def _timeline(stats: Stats, result: dict) -> list[str]:
    lines = ["## Timeline", "", "What the callers got, per 5 s of the run (after the client's retries).", "",
             "| seconds | decisions ok | decisions failed closed | writes acknowledged | writes of unknown outcome | other |",
             "|---|---|---|---|---|---|"]
    end = int(result.get("run seconds", 0)) + 1
    marks = {int(f["at"]) // 5: name for name, f in result.get("faults", {}).items()}
    for window in range(0, end, 5):
        total: Counter = Counter()
        for second in range(window, window + 5):
            total.update(stats.timeline.get(second, {}))
        failed = sum(total[f"decision.{k}"] for k in FAULT_KINDS)
        unknown = sum(total[f"write.{k}"] for k in FAULT_KINDS)
        other = total["decision.unexpected"] + total["write.unexpected"] + total["decision.stale"]
        mark = f" ← {marks[window // 5]}" if window // 5 in marks else ""
        lines.append(f"| {window}-{window + 5}{mark} | {total['decision.ok']} | {failed} | {total['write.ack']} | "
                     f"{unknown} | {other} |")
    return [*lines, ""]


def _evidence(stats: Stats) -> list[str]:
    lines: list[str] = []
    if stats.stale:
        lines += ["## Stale decisions (evidence)", "", "```", *[json.dumps(s, default=str) for s in stats.stale[:20]],
                  "```", ""]
    if stats.unexpected:
        lines += ["## Unexpected answers (evidence)", "",
                  "Each with the HTTP attempts of the call (endpoint, answer, X-Request-Id: find it in "
                  "var/soak/server.log) and the thread's last operations.", "", "```",
                  *[json.dumps(u, default=str) for u in stats.unexpected[:20]], "```", ""]
    clients = [u for u in stats.unknown if not u.who.startswith("probe")]
    probes = [u for u in stats.unknown if u.who.startswith("probe")]
    if stats.unknown:
        lines += ["## Writes of unknown outcome", "",
                  f"{len(clients)} from the client threads, each resolved by reading the state again:", "",
                  "| at | thread | write | answer (every attempt) | state read afterwards |", "|---|---|---|---|---|"]
        lines += [f"| {u.at:.2f} s | {u.who} | {u.kind} {u.account or ''} {u.user or ''} → {u.after} | {u.reason} | "
                  f"{u.resolved} |" for u in sorted(clients, key=lambda u: u.at)[:60]]
        if len(clients) > 60:
            lines.append(f"| ... | {len(clients) - 60} more | | | |")
        lines += ["", f"And {len(probes)} from the recovery probes ({dict(Counter(u.reason for u in probes))}): each "
                  "used a new user, so the final check accepts it applied or not, but only if it was logged as "
                  "that very write.", ""]
    if stats.crashed:
        lines += ["## Client threads stopped", "", "```", *stats.crashed[:5], "```", ""]
    return lines


def reading(result: dict, failures: list[str]) -> str:
    stats: Stats | None = result.get("stats")
    if stats is None or "verification" not in result:
        return "The soak did not get far enough to be read; see Aborted above. " + "; ".join(failures)
    database, kill = result["faults"].get("database restart", {}), result["faults"].get("worker kill", {})
    faults = sum(stats.outcomes[f"{what}.{k}"] for what in ("decision", "write") for k in FAULT_KINDS)
    others = faults - stats.outcomes["decision.503"] - stats.outcomes["write.503"]
    text = (
        f"Over {result['run seconds']:.0f} s, {result['clients']} client threads made "
        f"{stats.outcomes['write.ack']} acknowledged writes and {stats.outcomes['decision.ok']} answered decisions "
        f"against {result['workers']} workers, while the database was stopped for {database.get('down', 0):.1f} s and a "
        f"worker was killed. The faults cost {faults} calls that failed even after the client's retries "
        f"({stats.outcomes['decision.503']} decisions and {stats.outcomes['write.503']} writes answered 503, "
        f"{others} connection errors or timeouts); a decision that failed was never taken as allowed, and every "
        "write that failed was resolved by reading the state again. "
    )
    if database:
        text += (f"From `pg_ctl start`, the first decision succeeded "
                 f"{seconds(database['after restart']['decision'])} later, the first write "
                 f"{seconds(database['after restart']['write'])} later, without any restart. ")
    if kill:
        text += (f"After the worker was killed, the first decision came {seconds(kill['first']['decision'])} later "
                 f"and granian had a replacement running after {seconds(kill['replaced after'])}; the client threads' "
                 f"failed HTTP attempts in the 5 s from the kill: {_attempts_failed(stats, kill['at'])}. ")
    if not failures:
        text += ("No acknowledged write was lost, no change is unexplained, the tables hold exactly the state the "
                 "clients were told, every invariant holds, the revisions have no gap, the change log verifies, and "
                 "no decision sent with at_least_revision was stale.")
    else:
        text += "But the soak FAILED: " + "; ".join(failures) + ". The evidence is above."
    return text


def main() -> int:
    # `timeout`, CI cancelling: stop like Ctrl-C, so the server and the throwaway cluster are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run()
    failures = failures_of(result)
    write_report(result, failures)
    print(REPORT.read_text().split("## Set-up")[0].strip())
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
