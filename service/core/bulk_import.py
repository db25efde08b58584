"""Bulk import (SPEC "Bulk import"): an existing product's accounts, members and support agents, whole or not at all.

The file's lines (NDJSON) are read once and spilled to disk by the account they belong
to (`models.bulk_import.Spill`), so an account's lines may sit anywhere in the file and
memory does not grow with it. Each account is then checked whole: every line well formed
(ids and names by the strict-input rules, known roles, known fields, JSON booleans), one
account line, one role per user, then the invariants of `invariants.py`. Accounts that
pass are written in chunks, each chunk one transaction with one change-log entry per fact
(kind `import`). An account already in the store is left alone when it holds exactly the
file's facts (so a second run changes nothing and says so) and rejected when it differs:
the import never changes an existing account. Support agents already present are left alone.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from models.bulk_import import (
    NOTHING_PRESENT,
    ChunkWrite,
    ImportedAccount,
    PreparedChunk,
    Present,
    Spill,
    Turn,
    Written,
    latest_entry,
    prepare_chunk,
    write_beside,
    write_chunk,
)
from models.changelog import Who
from models.database import Database
from models.errors import Conflict
from policies.world import ROLES
from service.core import invariants
from service.core.inputs import ID_RULE, NAME_RULE, is_id, is_name

CHUNK_ACCOUNTS = 5_000
CHUNK_ATTEMPTS = 3  # a chunk that met a concurrent change to the same ids is tried again
WRITERS = 2  # PostgreSQL: chunks written at once (the second beside the first, `write_beside`); SQLite has one writer
ACCOUNT_FIELDS = {
    "type", "id", "name", "admin",
    "restrict_subscription_to_payment_manager", "auto_add_subscription_invoices_to_purchases",
}
MEMBERSHIP_FIELDS = {"type", "account", "user", "role"}
SUPPORT_FIELDS = {"type", "user"}
SETTINGS_DEFAULTS = {
    "restrict_subscription_to_payment_manager": False, "auto_add_subscription_invoices_to_purchases": True,
}
_ACCOUNT_KEY, _SUPPORT_KEY = "a ", "s "  # a space sorts before every id character and is in none


class NothingReadable(Exception):
    """Not one line of the file could be read as a fact: nothing was imported."""


@dataclass(frozen=True)
class Rejection:
    """An account, a support agent or a line left out, with its line numbers and every reason."""

    subject: str
    lines: tuple[int, ...]
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        if self.subject.startswith("line "):
            return f"rejected {self.subject}: {'; '.join(self.reasons)}"
        where = "line" if len(self.lines) == 1 else "lines"
        return f"rejected {self.subject} ({where} {', '.join(map(str, self.lines))}): {'; '.join(self.reasons)}"


@dataclass
class ImportReport:
    """What an import did, counted (rejections are told to `on_rejection` as they are found)."""

    lines: int = 0
    accounts_imported: int = 0
    memberships_imported: int = 0
    support_agents_imported: int = 0
    accounts_unchanged: int = 0
    support_agents_unchanged: int = 0
    rejected: int = 0
    rejected_lines: int = 0
    entries: int = 0
    first_revision: int | None = None
    revision: int = 0
    warnings: int = 0  # restricted accounts that still add subscription invoices to purchases (allowed)

    @property
    def changed(self) -> bool:
        return self.entries > 0

    def summary(self) -> str:
        parts = []
        if self.changed:
            parts.append(
                f"imported {self.accounts_imported} accounts ({self.memberships_imported} memberships) and "
                f"{self.support_agents_imported} support agents: {self.entries} change-log entries, "
                f"revisions {self.first_revision} to {self.revision}"
            )
        else:
            parts.append(f"nothing changed (revision {self.revision})")
        if self.accounts_unchanged or self.support_agents_unchanged:
            parts.append(
                f"{self.accounts_unchanged} accounts and {self.support_agents_unchanged} support agents "
                "already in the store, identical: left as they are"
            )
        if self.rejected:
            parts.append(f"{self.rejected} rejected ({self.rejected_lines} lines), each reported above")
        if self.warnings:
            parts.append(
                f"warning: {self.warnings} accounts restrict subscription management to the payment manager but "
                "still add subscription invoices to purchases (allowed: their members see what the payment manager pays)"
            )
        return f"{self.lines} lines read; " + "; ".join(parts)


@dataclass
class _Chunk:
    accounts: dict[str, tuple[ImportedAccount, tuple[int, ...]]] = field(default_factory=dict)
    support_agents: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.accounts) + len(self.support_agents)


def import_facts(
    db: Database,
    lines: Iterable[bytes],
    *,
    by: str,
    on_rejection: Callable[[Rejection], None],
    chunk_accounts: int = CHUNK_ACCOUNTS,
) -> ImportReport:
    """Import the NDJSON `lines` (bytes, as read from the file); rejections go to `on_rejection` as found.

    Raises `NothingReadable` (nothing imported) when the file holds no line that reads as a fact.
    """
    report = ImportReport()
    who = Who(acting_user=by, api_key=None)
    spill = Spill()
    writer = _Writer(db, who, report, on_rejection)
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived parsed lines, none in a cycle: the collector's passes over them found
    # nothing and cost a 100k-account import 1.4-1.6 s of its CPU (7 full collections)
    try:
        readable = 0
        for number, raw in enumerate(lines, start=1):
            report.lines = number
            if not raw.strip():
                continue
            key, text, problem = _key(raw)
            if problem is not None:
                _reject(report, on_rejection, Rejection(f"line {number}", (number,), (problem,)))
                continue
            readable += 1
            spill.add(key, number, text)
        if readable == 0:
            raise NothingReadable(f"no line of the {report.lines} read is a JSON fact: nothing imported")
        chunk = _Chunk()
        for key, grouped in spill.groups():
            if key.startswith(_ACCOUNT_KEY):
                account, rejection = _account(key[len(_ACCOUNT_KEY):], grouped)
                if rejection is not None:
                    _reject(report, on_rejection, rejection)
                    continue
                chunk.accounts[account.id] = (account, tuple(number for number, _text in grouped))
            else:
                user, rejection = _support_agent(key[len(_SUPPORT_KEY):], grouped)
                if rejection is not None:
                    _reject(report, on_rejection, rejection)
                    continue
                chunk.support_agents[user] = tuple(number for number, _text in grouped)
            if len(chunk) >= chunk_accounts:
                writer.hand_over(chunk)
                chunk = _Chunk()
        writer.hand_over(chunk)
        writer.finish()
    finally:
        writer.close()
        spill.close()
        if collecting:
            gc.enable()
    if report.changed:
        db.analyze()  # the planner's statistics, after the tables grew by a bulk load
    return report


class _Writer:
    """Writes chunks on threads of their own, in order, while the next ones are read and prepared.

    A chunk's write waits mostly on the database (COPY, index upkeep, commit). Everything
    else is the importer's own work and is done on the importing thread while the chunks
    before are written: reading and checking the lines, and numbering and hashing the
    chunk's entries on the guess that it follows the chunk before and that none of its
    accounts is present (`write_chunk` checks the guess under the lock). Once a chunk finds
    accounts already in the store (the same file run again), the guess is no longer made:
    the chunks after it are prepared under the lock, from what is really new.

    On PostgreSQL a chunk prepared ahead is written beside the chunk before it, on a second
    thread and connection (`write_beside`), when that chunk too was prepared ahead: the
    server writes both at once. When the guess fails, the chunk is written the ordinary way
    once the chunk before has ended. At most two chunks are being written while one is
    built, so memory stays three chunks. A write that fails raises from the next `hand_over`
    or from `finish`, and nothing after it is written.
    """

    def __init__(self, db: Database, who: Who, report: ImportReport, on_rejection: Callable[[Rejection], None]) -> None:
        self._db, self._who, self._report, self._on_rejection = db, who, report, on_rejection
        self._beside = WRITERS > 1 and not db.is_sqlite
        self._threads = ThreadPoolExecutor(max_workers=2 if self._beside else 1, thread_name_prefix="authz-import-writer")
        self._writing: list[Future[_Decider]] = []  # in chunk order: one chunk, or a chunk and the one beside it
        self._turn: Turn | None = None  # the turn of the chunk being written alone, if one may be written beside it
        self._after: tuple[int, str] | None = None  # (revision, hash) the next chunk is expected to follow
        self._ahead = True  # prepare chunks ahead: no chunk has found its accounts in the store yet

    def hand_over(self, chunk: _Chunk) -> None:
        if not len(chunk):
            return
        decider = _Decider(chunk)
        wanted = decider(NOTHING_PRESENT)
        expected = self._expected()
        prepared = None if expected is None else self._prepare(wanted, expected)
        if prepared is not None and self._turn is not None:  # the chunk before is being written alone, as prepared
            before, turn, self._turn = self._writing[0], self._turn, None
            self._after = (prepared.revision, prepared.last_hash)
            self._writing.append(self._threads.submit(self._write_beside, decider, wanted, prepared, before, turn))
            return
        self.finish()  # the chunks before end where they were expected to, unless another writer came between
        if not self._ahead:
            prepared = None  # a chunk before found accounts in the store: this one is prepared under the lock
        elif self._after != expected:
            prepared = self._prepare(wanted, self._after)
        self._after = None if prepared is None else (prepared.revision, prepared.last_hash)
        self._turn = turn = Turn() if self._beside and prepared is not None else None
        self._writing.append(self._threads.submit(self._write, decider, wanted, prepared, turn))

    def _expected(self) -> tuple[int, str] | None:
        """The (revision, hash) the chunk is expected to follow, if it is worth preparing ahead and known."""
        if not self._ahead or self._after is None and self._writing:
            return None
        if self._after is None:
            self._after = latest_entry(self._db)  # the first chunk
        return self._after

    def _prepare(self, wanted: ChunkWrite, after: tuple[int, str]) -> PreparedChunk:
        return prepare_chunk(wanted, self._who, after=after[0], prev_hash=after[1])

    def _write(self, decider: _Decider, wanted: ChunkWrite, prepared: PreparedChunk | None, turn: Turn | None = None) -> _Decider:
        attempt = 1
        while True:
            try:
                decider.written = write_chunk(self._db, self._who, wanted, decider, prepared, turn)
                return decider
            except Conflict:  # a concurrent write took one of the ids between our look and our insert
                if attempt == CHUNK_ATTEMPTS:
                    raise
                attempt += 1
                turn = None  # the chunk beside heard how the first attempt ended, and wrote nothing

    def _write_beside(
        self, decider: _Decider, wanted: ChunkWrite, prepared: PreparedChunk, before: Future[_Decider], turn: Turn
    ) -> _Decider:
        decider.written = write_beside(self._db, self._who, decider, prepared, turn)
        if decider.written is not None:
            return decider
        before.result()  # the ordinary way, after the chunk before (and not at all if it failed)
        return self._write(decider, wanted, None)

    def finish(self) -> None:
        """Wait for the chunks being written and count them in order (raising the first one's error, if one failed)."""
        writing, self._writing, self._turn = self._writing, [], None
        for future in writing:
            decider = future.result()
            self._after = (decider.written.revision, decider.written.hash)
            decision = decider.decision
            self._ahead = not (decision.unchanged or decision.agents_unchanged or decision.conflicts)
            _count(self._report, self._on_rejection, decision, decider.written)

    def close(self) -> None:
        self._threads.shutdown(wait=True)  # chunks being written when the import stopped end, committed or not


def _reject(report: ImportReport, on_rejection: Callable[[Rejection], None], rejection: Rejection) -> None:
    report.rejected += 1
    report.rejected_lines += len(rejection.lines)
    on_rejection(rejection)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("a field is given twice")
    return found


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)  # built once: `json.loads` with a hook
# builds a decoder per call, half of a line's parse


def _parse(text: str) -> dict:
    """The line's JSON object; ValueError (with the reason) if it is not one."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg}, column {error.colno})") from error
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


_SUBJECT_FIELDS = {"account": "id", "membership": "account", "support_agent": "user"}


def _key(raw: bytes) -> tuple[str, str, str | None]:
    """Which account (or support agent) the line belongs to, and its text; or why it belongs to none."""
    try:
        text = raw.decode()
        value = json.loads(text)  # duplicate fields are looked for on the second read (`_parse`)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except UnicodeDecodeError:
        return "", "", "bad JSON line: not UTF-8"
    except json.JSONDecodeError as error:
        return "", "", f"bad JSON line: not JSON ({error.msg}, column {error.colno})"
    except ValueError as error:
        return "", "", f"bad JSON line: {error}"
    kind = value.get("type")
    subject_field = _SUBJECT_FIELDS.get(kind) if type(kind) is str else None  # a list or object is no type (nor a key)
    if subject_field is None:
        return "", "", f"bad field: type must be account, membership or support_agent, not {json.dumps(kind)}"
    subject = value.get(subject_field)
    if not is_id(subject):
        return "", "", f"bad id: {subject_field} must be {ID_RULE}, not {json.dumps(subject)[:60]}"
    return (_SUPPORT_KEY if kind == "support_agent" else _ACCOUNT_KEY) + subject, text, None


def _fields(value: dict, allowed: set[str], required: tuple[str, ...]) -> list[str]:
    problems = [f"bad field: unknown field {name!r}" for name in sorted(set(value) - allowed)]
    problems += [f"bad field: {name} is missing" for name in required if name not in value]
    return problems


def _account(account_id: str, grouped: list[tuple[int, str]]) -> tuple[ImportedAccount, None] | tuple[None, Rejection]:
    """The account its lines describe, whole, or why it is rejected (every reason found)."""
    problems: list[str] = []
    account_lines: list[tuple[int, dict]] = []
    roles: dict[str, tuple[str, int]] = {}  # user -> (role, line)
    for number, text in grouped:
        try:
            value = _parse(text)
        except ValueError as error:
            problems.append(f"line {number}: bad JSON line: {error}")
            continue
        if value["type"] == "account":
            account_lines.append((number, value))
            continue
        line_problems = _fields(value, MEMBERSHIP_FIELDS, ("user", "role"))
        user, role = value.get("user"), value.get("role")
        if "user" in value and not is_id(user):
            line_problems.append(f"bad id: user must be {ID_RULE}")
        if "role" in value and role not in ROLES:
            line_problems.append(f"bad role {json.dumps(role)[:60]}: one of {', '.join(ROLES)}")
        if line_problems:
            problems += [f"line {number}: {problem}" for problem in line_problems]
        else:
            problems += _add_role(account_id, roles, user, role, number)
    if not account_lines:
        problems.append(f"no account line for {account_id} (a membership needs its account in the file)")
        return None, _account_rejection(account_id, grouped, problems)
    if len(account_lines) > 1:
        problems.append(f"{len(account_lines)} account lines for {account_id}: one is expected")
    number, value = account_lines[0]
    line_problems = _fields(value, ACCOUNT_FIELDS, ("name",))
    if "name" in value and not is_name(value["name"]):
        line_problems.append(f"bad field: name must be {NAME_RULE}")
    settings = {}
    for name, default in SETTINGS_DEFAULTS.items():
        settings[name] = value.get(name, default)
        if not isinstance(settings[name], bool):
            line_problems.append(f"bad field: {name} must be true or false")
    if "admin" in value:
        if is_id(value["admin"]):
            problems += _add_role(account_id, roles, value["admin"], "admin", number)
        else:
            line_problems.append(f"bad id: admin must be {ID_RULE}")
    problems += [f"line {number}: {problem}" for problem in line_problems]
    if problems:
        return None, _account_rejection(account_id, grouped, problems)
    restricted = settings["restrict_subscription_to_payment_manager"]
    members = {user: role for user, (role, _line) in roles.items()}
    breaches = invariants.breaches_of_whole_account(account_id, restricted=restricted, roles=members)
    if breaches:
        return None, _account_rejection(account_id, grouped, [breach.message for breach in breaches])
    account = ImportedAccount(
        account_id, value["name"], restricted, settings["auto_add_subscription_invoices_to_purchases"], members
    )
    return account, None


def _add_role(account_id: str, roles: dict[str, tuple[str, int]], user: str, role: str, number: int) -> list[str]:
    """Note `user`'s role; the same role twice is one fact, two roles break invariant 5."""
    if user in roles and roles[user][0] != role:
        other_role, other_line = roles[user]
        breach = invariants.second_role(account_id, user, role, other_role)
        return [f"lines {min(other_line, number)} and {max(other_line, number)}: {breach.message}"]
    roles.setdefault(user, (role, number))
    return []


def _account_rejection(account_id: str, grouped: list[tuple[int, str]], problems: list[str]) -> Rejection:
    return Rejection(f"account {account_id}", tuple(number for number, _text in grouped), tuple(problems))


def _support_agent(user: str, grouped: list[tuple[int, str]]) -> tuple[str, None] | tuple[None, Rejection]:
    problems = []
    for number, text in grouped:
        try:
            problems += [f"line {number}: {problem}" for problem in _fields(_parse(text), SUPPORT_FIELDS, ())]
        except ValueError as error:
            problems.append(f"line {number}: bad JSON line: {error}")
    if problems:
        return None, Rejection(f"support agent {user}", tuple(number for number, _text in grouped), tuple(problems))
    return user, None


@dataclass
class _Decision:
    """What a chunk's accounts and support agents are, against what the store holds of them."""

    write: ChunkWrite
    unchanged: int = 0
    agents_unchanged: int = 0
    conflicts: list[Rejection] = field(default_factory=list)


class _Decider:
    """Decides a chunk against what is present: new ones written, identical ones left, differing accounts rejected.

    Called once on a guess (nothing present) to prepare the chunk, and once more under the
    counter's lock; the last decision and what was written are what the report counts.
    """

    def __init__(self, chunk: _Chunk) -> None:
        self.chunk = chunk
        self.decision = _Decision(ChunkWrite([], []))
        self.written: Written | None = None

    def __call__(self, present: Present) -> ChunkWrite:
        chunk = self.chunk
        decision = _Decision(ChunkWrite([], [user for user in chunk.support_agents if user not in present.support_agents]))
        decision.agents_unchanged = len(chunk.support_agents) - len(decision.write.support_agents)
        for account_id, (account, numbers) in chunk.accounts.items():
            stored = present.accounts.get(account_id)
            if stored is None:
                decision.write.accounts.append(account)
            elif stored == account:
                decision.unchanged += 1
            else:
                decision.conflicts.append(_conflict(account, stored, numbers))
        self.decision = decision
        return decision.write


def _count(report: ImportReport, on_rejection: Callable[[Rejection], None], decision: _Decision, written: Written) -> None:
    """Add a written chunk to the report (on the importing thread, in chunk order)."""
    for rejection in decision.conflicts:
        _reject(report, on_rejection, rejection)
    chunk = decision.write
    report.accounts_unchanged += decision.unchanged
    report.support_agents_unchanged += decision.agents_unchanged
    report.accounts_imported += len(chunk.accounts)
    report.memberships_imported += sum(len(account.roles) for account in chunk.accounts)
    report.support_agents_imported += len(chunk.support_agents)
    report.warnings += sum(1 for account in chunk.accounts if account.restricted and account.auto_add)
    if written.entries and report.first_revision is None:
        report.first_revision = written.revision - written.entries + 1
    report.entries += written.entries
    report.revision = written.revision


def _conflict(account: ImportedAccount, stored: ImportedAccount, numbers: tuple[int, ...]) -> Rejection:
    """An account the store already holds with other facts: the import never changes an existing account."""
    differences = []
    if (account.name, account.restricted, account.auto_add) != (stored.name, stored.restricted, stored.auto_add):
        differences.append("its name or billing settings differ")
    users = sorted(set(account.roles) | set(stored.roles))
    differing = [user for user in users if account.roles.get(user) != stored.roles.get(user)]
    if differing:
        shown = ", ".join(
            f"{user}: {stored.roles.get(user) or 'not a member'} in the store, "
            f"{account.roles.get(user) or 'not a member'} in the file"
            for user in differing[:5]
        )
        differences.append(f"members differ ({shown}{', ...' if len(differing) > 5 else ''})")
    return Rejection(
        f"account {account.id}", numbers,
        (f"account {account.id} already exists in the store with other facts: {'; '.join(differences)}; "
         "the import never changes an existing account (change it through the API)",),
    )
