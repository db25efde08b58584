"""Membership changes per second on PostgreSQL, and the invariants checked in the database afterwards.

`wrk` (with `wrk_writes.lua`, one connection per thread) invites a new member
into a random account, acting as that account's admin so that the policy is
checked on the write path, then removes them, and again; every 201 and 200 is
one change. Meanwhile a Python client keeps trying what the invariants forbid
(a second payment manager, removing the last admin, removing the protected
payment manager, a second invitation): each must answer 409 with the right
code and change nothing. Afterwards the database itself is checked: every
account keeps an admin, at most one payment manager, no restriction without a
payment manager, and the change log holds revisions 1..N without a gap, its
hash chain intact, N being the changes the clients saw made.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.datasets import PARTNER, DataSet, account_id, admin_of
from bench.server import HEADERS, KEY
from bench.wrk import WrkError
from models.database import Database
from models.verification import verify_chain
from service.core.invariants import PAYMENT_MANAGER_PROTECTED

SCRIPT = Path(__file__).with_name("wrk_writes.lua")
REFUSAL_INTERVAL_SECONDS = 0.02


@dataclass
class Refusals:
    """What the invariant-breaking client saw: refusals with the right code, and anything else."""

    as_expected: int = 0
    unexpected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WriteRound:
    seconds: float
    changes: int
    unexpected: int
    first_unexpected: str
    p50_ms: float
    p99_ms: float
    refused_as_expected: int
    refusals_unexpected: tuple[str, ...]

    @property
    def per_second(self) -> float:
        return self.changes / self.seconds

    def as_dict(self) -> dict:
        return {
            "seconds": self.seconds, "changes": self.changes, "per_second": self.per_second,
            "unexpected": self.unexpected, "first_unexpected": self.first_unexpected,
            "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "refused_as_expected": self.refused_as_expected,
            "refusals_unexpected": list(self.refusals_unexpected),
        }


def drive(base: str, data: DataSet, seconds: float, connections: int, round_number: int) -> WriteRound:
    """`connections` wrk connections changing memberships for `seconds`, invariants attacked meanwhile."""
    refusals = Refusals()
    stop = threading.Event()
    attacker = threading.Thread(target=_break_invariants, args=(base, data, stop, refusals, round_number))
    attacker.start()
    arguments = [
        "wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
        "-s", str(SCRIPT), base, "--", str(data.shape.accounts), str(round_number), KEY,
    ]
    try:
        result = subprocess.run(arguments, capture_output=True, text=True, timeout=seconds + 60, check=False)
    finally:
        stop.set()
        attacker.join()
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise WrkError(f"{' '.join(arguments)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    found = json.loads(line[len("BENCH_JSON "):])
    return WriteRound(
        seconds=found["duration_us"] / 1e6,
        changes=found["changes"],
        unexpected=found["unexpected"],
        first_unexpected=found["first_unexpected"],
        p50_ms=found["latency_us"]["p50"] / 1e3,
        p99_ms=found["latency_us"]["p99"] / 1e3,
        refused_as_expected=refusals.as_expected,
        refusals_unexpected=tuple(refusals.unexpected[:20]),
    )


def _break_invariants(base: str, data: DataSet, stop: threading.Event, refusals: Refusals, round_number: int) -> None:
    """Try, in turn, each change an invariant forbids; each must be refused with its code."""
    session = requests.Session()
    rng = random.Random(round_number)
    attempt = 0
    while not stop.wait(REFUSAL_INTERVAL_SECONDS):
        attempt += 1
        number = rng.randrange(data.shape.accounts)
        partner_number = rng.choice(data.partner_numbers)
        members = f"{base}/v1/accounts/{account_id(number)}/members"
        partner_members = f"{base}/v1/accounts/{account_id(partner_number)}/members"
        try:
            kind = attempt % 4
            if kind == 0:
                answer = session.post(
                    partner_members, headers=HEADERS, json={"user": f"u_x{round_number}_{attempt}", "role": "payment_manager"}
                )
                expected = ("payment_manager_exists", None)
            elif kind == 1:
                answer = session.delete(f"{members}/{admin_of(number)}", headers=HEADERS)
                expected = ("last_admin", None)
            elif kind == 2:
                answer = session.delete(
                    f"{partner_members}/{PARTNER}?acting_user={admin_of(partner_number)}", headers=HEADERS
                )
                expected = ("payment_manager_protected", PAYMENT_MANAGER_PROTECTED)
            else:
                answer = session.post(members, headers=HEADERS, json={"user": admin_of(number), "role": "reader"})
                expected = ("already_member", None)
        except requests.RequestException as error:
            refusals.unexpected.append(f"{type(error).__name__}: {error}")
            continue
        error = answer.json().get("error", {}) if answer.headers.get("Content-Type", "").startswith("application/json") else {}
        code, message = expected
        if answer.status_code == 409 and error.get("code") == code and (message is None or error.get("message") == message):
            refusals.as_expected += 1
        else:
            refusals.unexpected.append(f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text[:200]}")


@dataclass(frozen=True)
class InvariantCheck:
    name: str
    expected: str
    found: object
    ok: bool


def wait_until_quiet(url: str, quiet_seconds: float = 1.0, limit_seconds: float = 30.0) -> int:
    """Wait until no write has committed for `quiet_seconds` (requests still in flight when wrk stopped); the revision."""
    db = Database(url)
    try:
        deadline = time.monotonic() + limit_seconds
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with db.engine.connect() as connection:
                revision = connection.execute(text("SELECT revision FROM revision_counter WHERE id = 1")).scalar_one()
            if revision != last:
                last, since = revision, time.monotonic()
            elif time.monotonic() - since >= quiet_seconds:
                break
            time.sleep(0.1)
        return last
    finally:
        db.dispose()


def check_invariants(
    url: str, data: DataSet, revision_before: int, changes_seen: int, in_flight_at_most: int
) -> list[InvariantCheck]:
    """What the database holds after the write load, read in one snapshot, against what it must hold.

    `revision_before` is the revision before the load began (the server may
    have logged changes of its own at start, e.g. adopting the policy).
    """
    wait_until_quiet(url)
    db = Database(url)
    try:
        with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            with connection.begin(), Session(bind=connection) as session:
                def one(sql: str) -> object:
                    return session.execute(text(sql)).scalar_one()

                count, first, last = session.execute(
                    text("SELECT count(*), coalesce(min(revision), 0), coalesce(max(revision), 0) FROM changes")
                ).one()
                during = one(f"SELECT count(*) FROM changes WHERE revision > {int(revision_before)}")
                net_invited = one(
                    "SELECT count(*) FILTER (WHERE kind = 'member.invite') - count(*) FILTER (WHERE kind = 'member.remove') "
                    "FROM changes"
                )
                memberships = one("SELECT count(*) FROM memberships")
                counter = one("SELECT revision FROM revision_counter")
                checks = [
                    _zero("accounts without an admin", one(
                        "SELECT count(*) FROM accounts a WHERE NOT EXISTS "
                        "(SELECT 1 FROM memberships m WHERE m.account_id = a.id AND m.role = 'admin')")),
                    _zero("accounts with more than one payment manager", one(
                        "SELECT count(*) FROM (SELECT account_id FROM memberships WHERE role = 'payment_manager' "
                        "GROUP BY account_id HAVING count(*) > 1) AS doubled")),
                    _zero("restricted accounts without a payment manager", one(
                        "SELECT count(*) FROM accounts a WHERE a.restrict_subscription_to_payment_manager AND NOT EXISTS "
                        "(SELECT 1 FROM memberships m WHERE m.account_id = a.id AND m.role = 'payment_manager')")),
                    InvariantCheck(
                        "the partner is still payment manager of its accounts (the attacks changed nothing)",
                        str(data.shape.partner_accounts),
                        partner := one(f"SELECT count(*) FROM memberships WHERE user_id = '{PARTNER}' AND role = 'payment_manager'"),
                        partner == data.shape.partner_accounts,
                    ),
                    InvariantCheck(
                        "change-log revisions are 1..N without a gap: (entries, first, last, counter)",
                        "(N, 1, N, N)", (count, first, last, counter),
                        count == last == counter and first == min(1, count),
                    ),
                    InvariantCheck(
                        "change-log entries of the load minus changes wrk saw answered (requests in flight when it stopped)",
                        f"0..{in_flight_at_most}", during - changes_seen, 0 <= during - changes_seen <= in_flight_at_most,
                    ),
                    InvariantCheck(
                        "memberships added = invitations minus removals in the change log",
                        str(net_invited), memberships - len(data.memberships), memberships - len(data.memberships) == net_invited,
                    ),
                ]
                # The chain only: the store was bulk-loaded, so its tables hold facts no entry records.
                verification = verify_chain(connection)
                checks.append(InvariantCheck(
                    "the change log's hash chain verifies (`authz changes verify` also compares the tables)", "ok",
                    "ok" if verification.ok else verification.problem, verification.ok,
                ))
        return checks
    finally:
        db.dispose()


def _zero(name: str, found: object) -> InvariantCheck:
    return InvariantCheck(name, "0", found, found == 0)
