"""`authz import`: an existing customer base loaded in bulk, each account whole or not at all, every fact in the log."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.database import Database
from models.tables import MembershipRow
from service.cli import main
from tests.support import account, user

AUTHZ = str(Path(sys.executable).parent / "authz")


def line(**fields) -> str:
    return json.dumps(fields)


def acc(account_id: str, admin: str | None, name: str = "Entreprise", **settings) -> str:
    fields = {"type": "account", "id": account_id, "name": name, **settings}
    if admin is not None:
        fields["admin"] = admin
    return line(**fields)


def member(account_id: str, member_user: str, role: str, **extra) -> str:
    return line(type="membership", account=account_id, user=member_user, role=role, **extra)


@pytest.fixture
def run(database_url, monkeypatch, tmp_path):
    """`authz import` on a file holding `lines`; answers the click result (stdout and stderr apart)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()  # click 8.2+: stdout and stderr apart, output both

    def import_lines(lines: list[str], *args: str):
        path = tmp_path / f"import-{random.randrange(10**9)}.ndjson"
        path.write_text("".join(f"{text}\n" for text in lines))
        return runner.invoke(main, ["import", str(path), *args], catch_exceptions=False)

    import_lines.cli = lambda *args, **kw: runner.invoke(main, list(args), catch_exceptions=False, **kw)
    return import_lines


def _intact(run) -> None:
    """`authz changes verify` finds the chain and the tables intact."""
    verify = run.cli("changes", "verify")
    assert verify.exit_code == 0 and "intact" in verify.stdout, verify.output


# The story's accounts, lines in no particular order: a membership may come before its account.
GOOD = [
    member("acc_b", "u_partner", "payment_manager"),                                     # 1
    acc("acc_b", "u_client", restrict_subscription_to_payment_manager=True,
        auto_add_subscription_invoices_to_purchases=False),                              # 2
    acc("acc_c", "u_other"),                                                              # 3
    line(type="support_agent", user="u_support"),                                        # 4
    member("acc_b", "u_accountant", "collaborator"),                                     # 5
    member("acc_c", "u_partner", "reader"),                                              # 6
    member("acc_b", "u_client", "admin"),  # the admin named again with the same role: one fact  # 7
]


def test_whole_accounts_are_imported_and_decide_at_once(run, api):
    before = api.post("/v1/accounts", {"id": "acc_live", "name": "Live", "admin": "u_live"}).json["revision"]
    result = run(GOOD)
    assert result.exit_code == 0, result.output
    assert "imported 2 accounts (5 memberships) and 1 support agents" in result.stdout
    assert api.get("/v1/accounts/acc_b").json["members"] == [
        {"user": "u_accountant", "role": "collaborator"},
        {"user": "u_client", "role": "admin"},
        {"user": "u_partner", "role": "payment_manager"},
    ]
    settings = api.get("/v1/accounts/acc_b/billing-settings").json
    assert settings["restrict_subscription_to_payment_manager"] is True
    assert settings["auto_add_subscription_invoices_to_purchases"] is False
    assert api.get("/v1/accounts/acc_c").json["billing_settings"] == {
        "restrict_subscription_to_payment_manager": False, "auto_add_subscription_invoices_to_purchases": True,
    }
    # A running service sees the import: its fact cache learns of the new revisions.
    assert api.allowed("u_partner", "manage_subscription", account("acc_b"))
    assert not api.allowed("u_client", "view_subscription", account("acc_b"))
    assert api.allowed("u_support", "view", {"type": "Subscription", "id": "s", "account": "acc_c"})
    assert api.allowed("u_live", "read", account("acc_live"))
    changes = api.get(f"/v1/changes?after={before}").json["changes"]
    assert [c["kind"] for c in changes] == ["import"] * 8
    assert all(c["acting_user"] == "import" for c in changes)


def test_each_fact_is_an_import_entry_in_the_ordinary_shapes_and_the_chain_holds(run, api):
    api.create_account("acc_live", "u_live")
    assert run(GOOD, "--by", "migration_2026").exit_code == 0
    api.invite("acc_b", "u_new", "reader", acting_user="u_client")  # an ordinary write after the import
    entries = api.get("/v1/changes?account=acc_b").json["changes"]
    imported = [(e["user"], e["before"], e["after"], e["acting_user"]) for e in entries if e["kind"] == "import"]
    assert imported == [
        (None, {}, {"name": "Entreprise", "restrict_subscription_to_payment_manager": True,
                    "auto_add_subscription_invoices_to_purchases": False}, "migration_2026"),
        ("u_accountant", {"role": None}, {"role": "collaborator"}, "migration_2026"),
        ("u_client", {"role": None}, {"role": "admin"}, "migration_2026"),
        ("u_partner", {"role": None}, {"role": "payment_manager"}, "migration_2026"),
    ]
    assert entries[-1]["kind"] == "member.invite"
    verify = run.cli("changes", "verify")
    # The policy, the sign-up, 8 imported facts, the invitation.
    assert verify.exit_code == 0 and "intact: 11 entries, revisions 1 to 11" in verify.stdout, verify.output
    assert api.get("/v1/changes/verify").json["ok"] is True


def test_time_travel_across_an_import(run, api):
    signed_up = api.create_account("acc_live", "u_live").json["revision"]
    assert run(GOOD).exit_code == 0
    imported = api.get("/v1/changes?after=0").json["revision"]
    lifted = api.settings("acc_b", "u_partner", restrict_subscription_to_payment_manager=False).json["revision"]

    def as_of(actor: str, action: str, resource: dict, revision: int) -> bool:
        answer = api.post("/v1/authorize", {
            "actor": user(actor), "action": action, "resource": resource, "as_of_revision": revision,
        })
        assert answer.status == 200, answer
        return answer.json["allowed"]

    assert not as_of("u_partner", "read", account("acc_b"), signed_up)
    assert as_of("u_partner", "manage_subscription", account("acc_b"), imported)
    assert not as_of("u_client", "view_subscription", account("acc_b"), imported)
    assert as_of("u_client", "view_subscription", account("acc_b"), lifted)
    assert as_of("u_partner", "read", account("acc_c"), imported)  # reader of acc_c
    card = {"type": "PaymentMethod", "id": "pm", "account": "acc_c", "owner": "u_partner"}
    assert not as_of("u_support", "delete", card, signed_up)
    assert as_of("u_support", "delete", card, imported)
    assert as_of("u_accountant", "edit_workspace", account("acc_b"), imported)


def test_each_bad_account_is_rejected_whole_with_its_lines_and_reason(run, api):
    lines = [
        acc("acc_ok", "u_1"),                                                               # 1
        acc("acc_no_admin", None),                                                          # 2
        member("acc_two_pm", "u_pm1", "payment_manager"),                                   # 3
        acc("acc_two_pm", "u_2"),                                                           # 4
        member("acc_two_pm", "u_pm2", "payment_manager"),                                   # 5
        acc("acc_restricted", "u_3", restrict_subscription_to_payment_manager=True),        # 6
        acc("acc_two_roles", "u_4"),                                                        # 7
        member("acc_two_roles", "u_4", "reader"),                                           # 8
        acc("acc_bad_role", "u_5"),                                                         # 9
        member("acc_bad_role", "u_6", "owner"),                                             # 10
        acc("acc_bad_user", "u_7"),                                                         # 11
        member("acc_bad_user", "u 8", "reader"),                                            # 12
        acc("acc_bad_field", "u_9", colour="blue"),                                         # 13
        acc("acc_bad_setting", "u_10", restrict_subscription_to_payment_manager="yes"),     # 14
        "{not json",                                                                        # 15
        member("acc_orphan", "u_11", "reader"),                                             # 16
        acc("acc_twice", "u_12"),                                                           # 17
        acc("acc_twice", "u_12", name="Autre"),                                             # 18
        acc("bad/id", "u_13"),                                                              # 19
        '{"type": "membership", "account": "acc_ok", "user": "u_x", "user": "u_y", "role": "reader"}',  # 20
        line(type="owner", user="u_14"),                                                    # 21
        acc("acc_bad_name", "u_15", name="Evil\u202eName"),                                 # 22
        acc("acc_ok2", "u_16"),                                                             # 23
    ]
    result = run(lines)
    assert result.exit_code == 1, result.output
    report = result.stderr
    expected = {
        "rejected account acc_no_admin (line 2): account acc_no_admin has no admin",
        "rejected account acc_two_pm (lines 3, 4, 5): account acc_two_pm names 2 payment managers (u_pm1, u_pm2)",
        "rejected account acc_restricted (line 6): account acc_restricted has no payment manager",
        "rejected account acc_two_roles (lines 7, 8): lines 7 and 8: u_4 is named both",
        "rejected account acc_bad_role (lines 9, 10): line 10: bad role \"owner\"",
        "rejected account acc_bad_user (lines 11, 12): line 12: bad id: user must be",
        "rejected account acc_bad_field (line 13): line 13: bad field: unknown field 'colour'",
        "rejected account acc_bad_setting (line 14): line 14: bad field: restrict_subscription_to_payment_manager "
        "must be true or false",
        "rejected line 15: bad JSON line: not JSON",
        "rejected account acc_orphan (line 16): no account line for acc_orphan",
        "rejected account acc_twice (lines 17, 18): 2 account lines for acc_twice",
        "rejected line 19: bad id: id must be",
        "rejected account acc_ok (lines 1, 20): line 20: bad JSON line: a field is given twice",
        "rejected line 21: bad field: type must be account, membership or support_agent",
        "rejected account acc_bad_name (line 22): line 22: bad field: name must be",
    }
    missing = [text for text in expected if text not in report]
    assert not missing, f"missing from the report: {missing}\n{report}"
    assert "15 rejected (22 lines)" in report
    assert "imported 1 accounts (1 memberships)" in result.stdout
    assert api.get("/v1/accounts/acc_ok2").status == 200
    for rejected in ("acc_ok", "acc_no_admin", "acc_two_pm", "acc_restricted", "acc_two_roles", "acc_bad_role",
                     "acc_bad_user", "acc_orphan", "acc_twice", "acc_bad_name"):
        assert api.get(f"/v1/accounts/{rejected}").status == 404, rejected
    assert run.cli("changes", "verify").exit_code == 0


def test_fields_of_any_json_type_are_reasons_not_crashes(run):
    lines = [
        line(type=["account"], id="acc_x"),                                                  # 1
        line(type={"account": 1}, id="acc_x"),                                               # 2
        line(type="account", id=["acc_x"], name="Entreprise", admin="u_1"),                  # 3
        acc("acc_ok", "u_1"),                                                                # 4
        line(type="membership", account="acc_ok", user={"id": "u_2"}, role=["reader"]),      # 5
        acc("acc_null_name", "u_3", name=None),                                              # 6
        line(type="support_agent", user="u_s", since=2020),                                  # 7
        line(type="support_agent", user="u_s", user_id="u_t"),                               # 8
        line(type="support_agent", user="u_fine"),                                           # 9
    ]
    result = run(lines)
    assert result.exit_code == 1, result.output
    for expected in (
        'rejected line 1: bad field: type must be account, membership or support_agent, not ["account"]',
        'rejected line 2: bad field: type must be account, membership or support_agent, not {"account": 1}',
        'rejected line 3: bad id: id must be',
        "rejected account acc_ok (lines 4, 5): line 5: bad id: user must be",
        'line 5: bad role ["reader"]',
        "rejected account acc_null_name (line 6): line 6: bad field: name must be",
        "rejected support agent u_s (lines 7, 8): line 7: bad field: unknown field 'since'; "
        "line 8: bad field: unknown field 'user_id'",
    ):
        assert expected in result.stderr, f"{expected!r} missing:\n{result.stderr}"
    assert "imported 0 accounts (0 memberships) and 1 support agents" in result.stdout


def test_the_same_file_again_changes_nothing_and_says_so(run, api):
    first = run(GOOD)
    assert first.exit_code == 0
    revision = api.get("/v1/changes?after=0").json["revision"]
    again = run(list(reversed(GOOD)))
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"7 lines read; nothing changed (revision {revision}); 2 accounts and 1 support agents")
    assert api.get("/v1/changes?after=0").json["revision"] == revision


def test_an_account_already_in_the_store_with_other_facts_is_rejected_and_left_alone(run, api):
    api.create_account("acc_b", "u_client")
    result = run(GOOD)
    assert result.exit_code == 1
    assert "rejected account acc_b (lines 1, 2, 5, 7): account acc_b already exists in the store with other facts" in (
        result.stderr
    )
    assert "u_partner: not a member in the store, payment_manager in the file" in result.stderr
    assert api.get("/v1/accounts/acc_b").json["members"] == [{"user": "u_client", "role": "admin"}]
    assert api.get("/v1/accounts/acc_c").status == 200  # the others are imported


def test_writers_between_chunks_are_chained_in_and_accounts_they_create_are_not_overwritten(run, api, monkeypatch):
    """Each chunk is numbered and hashed ahead, guessing it follows the chunk before; the guess is checked
    under the counter's lock. Here other writers come between chunks: their entries sit between the
    import's, the chain holds, and an account one of them created is compared, never overwritten."""
    from models import bulk_import as storage
    from service.core import bulk_import as core

    writes, prepared_again = [], []
    interleaved = {
        2: lambda: api.create_account("acc_live", "u_live"),  # the log moves: chunk 2's numbering is stale
        3: lambda: api.create_account("acc_3", "u_someone"),  # chunk 3's account appears, with other facts
        4: lambda: api.create_account("acc_4", "u_admin_4", name="Entreprise"),  # chunk 4's, identical
    }
    real_write, real_prepare = core.write_chunk, storage.prepare_chunk

    def write_chunk(db, who, wanted, *args):
        writes.append(wanted)
        interleaved.get(len(writes), lambda: None)()
        return real_write(db, who, wanted, *args)

    def prepare_under_the_lock(*args, **kwargs):
        prepared_again.append(len(writes))
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(core, "WRITERS", 1)  # one chunk at a time, so that the writes above come between chunks
    monkeypatch.setattr(core, "write_chunk", write_chunk)
    monkeypatch.setattr(storage, "prepare_chunk", prepare_under_the_lock)
    result = run([acc(f"acc_{n}", f"u_admin_{n}") for n in range(1, 6)], "--chunk-accounts", "1")
    assert result.exit_code == 1, result.output
    assert "rejected account acc_3 (line 3): account acc_3 already exists in the store with other facts" in result.stderr
    assert result.stdout.startswith("5 lines read; imported 3 accounts (3 memberships)"), result.stdout
    assert "1 accounts and 0 support agents already in the store, identical" in result.stdout
    # Chunks 2, 3 and 4 met another writer and were numbered again under the lock; chunk 1 was written as
    # prepared; once chunk 4 had found its account present, chunk 5 was prepared under the lock, not ahead.
    assert prepared_again == [2, 3, 4, 5]
    assert api.get("/v1/accounts/acc_3").json["members"] == [{"user": "u_someone", "role": "admin"}]
    changes = api.get("/v1/changes?after=0&limit=100").json["changes"]
    assert [(c["kind"], c["account"], c["user"]) for c in changes][1:] == [
        ("import", "acc_1", None), ("import", "acc_1", "u_admin_1"),
        ("account.create", "acc_live", "u_live"),
        ("import", "acc_2", None), ("import", "acc_2", "u_admin_2"),
        ("account.create", "acc_3", "u_someone"),
        ("account.create", "acc_4", "u_admin_4"),
        ("import", "acc_5", None), ("import", "acc_5", "u_admin_5"),
    ]
    _intact(run)


def test_the_same_file_again_is_not_prepared_ahead_once_its_accounts_are_found(run, monkeypatch, database_url):
    """Preparing a chunk ahead guesses its accounts are new; run again, a file's are all present and the
    numbering and hashing done ahead is wasted: after the first chunk finds them, none is prepared ahead
    (at 1,000,000 accounts the second run had taken 127 s on SQLite where the first took 206 s)."""
    from service.core import bulk_import as core

    lines = [acc(f"acc_{n}", f"u_admin_{n}") for n in range(1, 6)]
    assert run(lines, "--chunk-accounts", "1").exit_code == 0
    ahead, real_prepare = [], core.prepare_chunk

    def prepare_ahead(*args, **kwargs):
        ahead.append(args[0])
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(core, "prepare_chunk", prepare_ahead)
    again = run(lines, "--chunk-accounts", "1")
    assert again.exit_code == 0 and "nothing changed" in again.stdout, again.output
    # The first chunk, and the second, prepared while the first was written; on PostgreSQL the second is
    # written beside the first, so a third is prepared while those two are written.
    assert len(ahead) == (2 if database_url.startswith("sqlite") else 3)


def test_postgresql_listeners_hear_each_chunk_once_with_its_latest_revision(run, api, database_url):
    """The change log notifies once per statement with the latest revision it inserted (migration 0009):
    a chunk's COPY of many entries is one notification, and an ordinary write is one as before."""
    if not database_url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's (SQLite's caches watch PRAGMA data_version)")
    import psycopg

    from models.changelog import NOTIFY_CHANNEL

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        assert run([acc(f"acc_{n}", f"u_admin_{n}") for n in range(1, 5)], "--chunk-accounts", "2").exit_code == 0
        invited = api.invite("acc_1", "u_new", "reader").json["revision"]
        heard = [int(notification.payload) for notification in listener.notifies(timeout=1.0, stop_after=3)]
    # Two chunks of two accounts (4 entries each) after the policy's entry, then the invitation.
    assert heard == [5, 9, invited] and invited == 10


def test_standard_input_and_files_that_cannot_be_read(run, tmp_path):
    piped = run.cli("import", "-", input="".join(f"{text}\n" for text in GOOD))
    assert piped.exit_code == 0 and "imported 2 accounts" in piped.stdout
    missing = run.cli("import", str(tmp_path / "absent.ndjson"))
    assert missing.exit_code == 2
    garbage = run(["not json", "\x00\x01", "[1, 2]"])
    assert garbage.exit_code == 2 and "nothing imported" in garbage.stderr
    assert run([]).exit_code == 2


def test_drift_after_an_import_is_found(run, database_url):
    assert run(GOOD).exit_code == 0
    db = Database(database_url)
    with db.write() as session:
        session.get(MembershipRow, ("acc_b", "u_accountant")).role = "admin"
    db.dispose()
    verify = run.cli("changes", "verify")
    assert verify.exit_code == 1
    assert "membership ('acc_b', 'u_accountant'): the table says admin, the log says collaborator" in verify.stdout


def _shuffled_file(path: Path, accounts: int) -> None:
    """`accounts` accounts of 3 lines, memberships first and lines shuffled within windows of 3,000."""
    lines = []
    for number in range(accounts):
        lines += [
            member(f"acc_{number:07d}", f"u_pm_{number % 97}", "payment_manager"),
            member(f"acc_{number:07d}", f"u_r_{number % 1013}", "reader"),
            acc(f"acc_{number:07d}", f"u_admin_{number}", restrict_subscription_to_payment_manager=number % 2 == 0),
        ]
    rng = random.Random(7)
    with path.open("w") as out:
        for start in range(0, len(lines), 3_000):
            window = lines[start:start + 3_000]
            rng.shuffle(window)
            out.writelines(f"{text}\n" for text in window)


def _peak_rss_kb(database_url: str, path: Path) -> int:
    process = subprocess.Popen(
        [AUTHZ, "import", str(path), "--chunk-accounts", "500"],
        env={**os.environ, "DATABASE_URL": database_url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    out, err = process.communicate()
    assert process.returncode == 0, err.decode()
    return usage.ru_maxrss


def test_memory_stays_flat_as_the_file_grows(database_url, tmp_path):
    small, large = tmp_path / "small.ndjson", tmp_path / "large.ndjson"
    _shuffled_file(small, 2_000)
    _shuffled_file(large, 20_000)
    small_kb = _peak_rss_kb(database_url, small)
    # A fresh store for the large file would need another database; the accounts differ by prefix instead.
    large.write_text(large.read_text().replace("acc_", "big_"))
    large_kb = _peak_rss_kb(database_url, large)
    # Ten times the lines (60,000): the peak may not grow by more than a few MB of allocator noise.
    assert large_kb - small_kb < 12_000, (small_kb, large_kb)


def test_the_auditor_reads_each_imported_fact_in_business_words(run, api):
    from service.audit.words import sentence

    assert run(GOOD, "--by", "migration").exit_code == 0
    entries = api.get("/v1/changes?after=0").json["changes"]
    sentences = {sentence(entry) for entry in entries if entry["kind"] == "import"}
    assert "migration imported account acc_b (Entreprise)" in sentences
    assert "migration imported u_partner as payment_manager of acc_b" in sentences
    assert "migration imported u_support as a support agent" in sentences


def test_postgresql_writes_each_chunk_beside_the_one_before_and_the_chain_holds(run, api, database_url, monkeypatch):
    """On PostgreSQL a chunk prepared ahead is written on a second connection while the chunk before it is
    still being written (two COPYs at once); its entries follow that chunk's, in file order, and the chain holds.
    SQLite has one writer: there every chunk is written alone."""
    from service.core import bulk_import as core

    beside, real_beside = [], core.write_beside

    def write_beside(*args, **kwargs):
        beside.append(real_beside(*args, **kwargs))
        return beside[-1]

    monkeypatch.setattr(core, "write_beside", write_beside)
    result = run([acc(f"acc_{n:02d}", f"u_admin_{n}") for n in range(1, 21)], "--chunk-accounts", "2")
    assert result.exit_code == 0, result.output
    assert "imported 20 accounts (20 memberships)" in result.stdout
    if database_url.startswith("sqlite"):
        assert beside == []
    else:  # chunks 2, 4, ... are written beside 1, 3, ...; with no other writer every guess holds
        assert len(beside) == 5 and all(written is not None for written in beside), beside
    changes = api.get("/v1/changes?after=1&limit=100").json["changes"]
    assert [(c["account"], c["user"]) for c in changes] == [
        (f"acc_{n:02d}", who) for n in range(1, 21) for who in (None, f"u_admin_{n}")
    ]
    _intact(run)


def test_imports_and_api_writers_at_once_lose_nothing_and_deadlock_nowhere(run, api, database_url):
    """Writers of the API keep writing while an import runs, chunk after chunk beside each other: every write
    of both is acknowledged and stored, none is refused for a deadlock, and the chain holds."""
    import threading

    api.create_account("acc_live", "u_live")
    answers, importing = [], threading.Event()

    def keep_writing() -> None:
        number = 0
        while importing.is_set() or number < 20:
            answers.append(api.invite("acc_live", f"u_member_{number}", "reader").status)
            number += 1

    importing.set()
    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = run([acc(f"acc_{n:03d}", f"u_admin_{n}") for n in range(1, 121)], "--chunk-accounts", "3")
    finally:
        importing.clear()
        writer.join()
    assert result.exit_code == 0, result.output
    assert "imported 120 accounts (120 memberships)" in result.stdout
    assert answers and set(answers) == {201}, answers
    members = api.get("/v1/accounts/acc_live").json["members"]
    assert len(members) == 1 + len(answers)
    changes = api.get("/v1/changes?after=0&limit=1000").json["changes"]
    imported = [c["account"] for c in changes if c["kind"] == "import" and c["user"] is None]
    assert imported == [f"acc_{n:03d}" for n in range(1, 121)]  # in file order, whatever came between
    _intact(run)


@pytest.fixture
def beside(database_url, api):
    """`write_beside` of one new account (acc_new) on a thread, with the turn of an imagined chunk before it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("chunks are written beside each other on PostgreSQL only (SQLite has one writer)")
    import threading

    from models.bulk_import import ChunkWrite, ImportedAccount, Turn, latest_entry, prepare_chunk, write_beside
    from models.changelog import Who

    api.create_account("acc_live", "u_live")
    db, who = Database(database_url), Who(acting_user="migration", api_key=None)
    wanted = ChunkWrite([ImportedAccount("acc_new", "New", False, True, {"u_new": "admin"})], [])

    class Beside:
        url, turn, result = database_url, Turn(), []

        def start(self, after: tuple[int, str] | None = None) -> None:
            """Prepared after `after` (the store's latest entry by default), as if the chunk before wrote nothing."""
            revision, last_hash = after or latest_entry(db)
            prepared = prepare_chunk(wanted, who, after=revision, prev_hash=last_hash)
            self.thread = threading.Thread(
                target=lambda: self.result.append(write_beside(db, who, lambda _present: wanted, prepared, self.turn))
            )
            self.thread.start()

        def waiting(self) -> None:
            """Until its rows are in and it waits for the chunk before to end (idle in its transaction)."""
            _wait_for_backend(self.url, "state = 'idle in transaction'")

        def written(self):
            self.thread.join(timeout=30)
            assert not self.thread.is_alive()
            return self.result[0]

    yield Beside()
    db.dispose()


def _wait_for_backend(database_url: str, condition: str) -> None:
    """Wait until another PostgreSQL backend of this database is in `condition` (on pg_stat_activity's columns)."""
    import time

    import psycopg

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        for _attempt in range(500):
            if connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                f"AND pid <> pg_backend_pid() AND {condition}"
            ).fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"no backend came to {condition}")


def test_a_chunk_beside_commits_only_after_the_one_before_it(beside, api, run):
    beside.turn.numbered(True)
    beside.start()
    beside.waiting()
    assert api.get("/v1/accounts/acc_new").status == 404  # written, not committed: the chunk before has not ended
    revision = api.revision()
    beside.turn.ended(True)
    written = beside.written()
    assert (written.entries, written.revision) == (2, revision + 2)
    assert api.get("/v1/accounts/acc_new").json["members"] == [{"user": "u_new", "role": "admin"}]
    _intact(run)


@pytest.mark.parametrize("before", ["numbered again", "rolled back"])
def test_a_chunk_beside_writes_nothing_when_the_one_before_did_not_keep_its_numbering(beside, api, run, before):
    if before == "numbered again":
        beside.turn.numbered(False)  # it met another writer: the entries beside would not follow it
        beside.start()
    else:
        beside.turn.numbered(True)
        beside.start()
        beside.waiting()
        beside.turn.ended(False)
    assert beside.written() is None
    assert api.get("/v1/accounts/acc_new").status == 404
    _intact(run)


def test_a_writer_that_comes_between_waits_a_moment_and_the_chunk_beside_gives_way(beside, api, run):
    """The API writer takes the counter once the chunk before has committed; its entry's revision is one the
    chunk beside has written uncommitted, so it waits for it; the chunk beside finds the counter taken, does
    not wait (that would be a deadlock), and rolls back: the writer's change goes in, the chunk is left to the
    ordinary write."""
    import threading

    beside.turn.numbered(True)
    beside.start()
    beside.waiting()
    answer = []
    writer = threading.Thread(target=lambda: answer.append(api.invite("acc_live", "u_between", "reader")))
    writer.start()
    _wait_for_backend(beside.url, "wait_event_type = 'Lock'")
    beside.turn.ended(True)
    assert beside.written() is None
    writer.join(timeout=30)
    assert answer[0].status == 201, answer
    assert api.get("/v1/accounts/acc_new").status == 404
    _intact(run)


@pytest.mark.parametrize("guess", ["stale revision", "other hash"])
def test_a_chunk_beside_on_a_wrong_guess_writes_nothing(beside, api, run, guess):
    from models.bulk_import import latest_entry

    revision, last_hash = latest_entry(Database(beside.url))
    if guess == "stale revision":
        api.invite("acc_live", "u_between", "reader")  # committed after the guess: its revision is taken
    else:
        last_hash = "f" * 64  # the counter is where it was guessed, the entry there is another one
    beside.turn.numbered(True)
    beside.turn.ended(True)
    beside.start(after=(revision, last_hash))
    assert beside.written() is None
    assert api.get("/v1/accounts/acc_new").status == 404
    _intact(run)


def test_when_a_chunk_fails_the_one_beside_it_is_not_written_either(run, api, database_url, monkeypatch):
    """A write that fails stops the import, and nothing after it is written: the chunk beside had its rows in
    (uncommitted) while the chunk before failed, and rolls them back instead of being written the ordinary way."""
    if not database_url.startswith("postgresql"):
        pytest.skip("chunks are written beside each other on PostgreSQL only (SQLite has one writer)")
    import psycopg

    from models import bulk_import as storage

    real_copy, copied = storage._copy_rows, []

    def copy_rows(session, prepared):
        copied.append(prepared.accounts[0][0])
        if prepared.accounts[0][0] == "acc_1":
            real_copy(session, prepared)
            raise psycopg.errors.DiskFull("could not extend file: No space left on device")
        return real_copy(session, prepared)

    monkeypatch.setattr(storage, "_copy_rows", copy_rows)
    revision = api.revision()
    result = run([acc(f"acc_{n}", f"u_admin_{n}") for n in range(1, 5)], "--chunk-accounts", "1")
    assert result.exit_code != 0
    assert "import stopped: the database refused the chunk (could not extend file" in result.output
    assert "acc_2" in copied  # written beside acc_1's chunk, then rolled back
    assert [api.get(f"/v1/accounts/acc_{n}").status for n in range(1, 5)] == [404] * 4
    assert api.revision() == revision
    _intact(run)
