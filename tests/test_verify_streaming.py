"""Verification streams in key order: every difference counted, the listing cut, the head shown and anchored."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from models import changelog
from models.changelog import Who
from models.verification import verify_log
from service.cli import main


def tamper(db, *statements: str) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


@pytest.fixture
def store(app, api):
    """Twelve accounts (ids out of insertion order), each with two more members; a support agent."""
    for number in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6):
        account = f"acc_{number:02d}"
        api.create_account(account, f"u_admin_{number}")
        api.invite(account, f"u_reader_{number}", "reader")
        api.invite(account, "u_partner", "payment_manager")
    api.settings("acc_03", "u_partner", restrict_subscription_to_payment_manager=True)
    api.put("/v1/support-agents/u_support")
    return app.extensions["authz"].db, api


def cli(database_url, monkeypatch, *args: str):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner().invoke(main, ["changes", *args])


def test_a_store_written_through_the_api_is_intact(store):
    db, api = store
    result = verify_log(db)
    assert result.ok and result.drift_count == 0 and result.entries == api.revision()


def test_every_difference_is_counted_and_the_listing_cut(store):
    db, _api = store
    tamper(
        db,
        "UPDATE memberships SET role = 'collaborator' WHERE role = 'reader'",  # 12 memberships
        "UPDATE accounts SET name = 'renamed'",  # 12 accounts
        "DELETE FROM support_agents",
        "INSERT INTO support_agents (user_id) VALUES ('u_intruder')",
    )
    result = verify_log(db)
    assert not result.ok and result.first_bad_revision is None
    assert result.drift_count == 26 and len(result.drift) == 20
    assert "26 differences, 20 shown" in result.problem
    # key order: an account, then its members, account after account
    assert result.drift[0].startswith("account acc_00: the table says ('renamed', False, True)")
    assert result.drift[1] == "membership ('acc_00', 'u_reader_0'): the table says collaborator, the log says reader"
    assert result.drift[2].startswith("account acc_01:")


def test_support_agents_and_memberships_on_both_sides(store):
    db, _api = store
    tamper(
        db,
        "DELETE FROM support_agents",
        "INSERT INTO support_agents (user_id) VALUES ('u_intruder')",
        "DELETE FROM memberships WHERE account_id = 'acc_05' AND user_id = 'u_reader_5'",
        "INSERT INTO memberships (account_id, user_id, role) VALUES ('acc_11', 'u_slipped_in', 'admin')",
    )
    assert set(verify_log(db).drift) == {
        "membership ('acc_05', 'u_reader_5'): in the log (reader), not in the table",
        "membership ('acc_11', 'u_slipped_in'): in the table (admin), not in the log",
        "support agent u_intruder: in the table, not in the log",
        "support agent u_support: in the log, not in the table",
    }


def test_imported_facts_are_read_from_their_entries(app, api):
    """Entries of kind `import` (bulk import) carry settings, roles and support agents in their `after`."""
    db = app.extensions["authz"].db
    with db.write() as session:
        who = Who(None, None)
        after = {"name": "Imported", "restrict_subscription_to_payment_manager": False,
                 "auto_add_subscription_invoices_to_purchases": True}
        changelog.append(session, who, "import", account="acc_imp", before={}, after=after)
        changelog.append(session, who, "import", account="acc_imp", user="u_boss", before={}, after={"role": "admin"})
        changelog.append(session, who, "import", user="u_help", before={}, after={"support_agent": True})
        session.execute(text("INSERT INTO accounts VALUES ('acc_imp', 'Imported', false, true)"))
        session.execute(text("INSERT INTO memberships VALUES ('acc_imp', 'u_boss', 'admin')"))
        session.execute(text("INSERT INTO support_agents VALUES ('u_help')"))
    assert verify_log(db).ok
    tamper(db, "UPDATE memberships SET role = 'reader'")
    assert verify_log(db).drift == ("membership ('acc_imp', 'u_boss'): the table says reader, the log says admin",)


def test_head_prints_the_latest_entry(store, database_url, monkeypatch):
    _db, api = store
    latest = api.revision()
    entry = api.get(f"/v1/changes?after={latest - 1}").json["changes"][0]
    result = cli(database_url, monkeypatch, "head")
    assert result.exit_code == 0 and result.output == f"{latest} {entry['hash']}\n"
    verified = cli(database_url, monkeypatch, "verify")
    assert verified.exit_code == 0 and verified.output.splitlines()[-1] == f"head {latest} {entry['hash']}"


def test_expect_finds_a_log_rewritten_whole(store, database_url, monkeypatch):
    """Every hash recomputed after an edit: the chain holds, but the noted head's hash is gone."""
    db, api = store
    noted = cli(database_url, monkeypatch, "head").output.split()
    anchor = f"{noted[0]}:{noted[1]}"
    assert cli(database_url, monkeypatch, "verify", "--expect", anchor).exit_code == 0
    invited = api.get("/v1/changes?account=acc_07").json["changes"][1]
    assert invited["kind"] == "member.invite" and invited["user"] == "u_reader_7"
    _rewrite_from(db, invited["revision"], '{"role":"admin"}')
    tamper(db, "UPDATE memberships SET role = 'admin' WHERE account_id = 'acc_07' AND user_id = 'u_reader_7'")
    plain = cli(database_url, monkeypatch, "verify")
    assert plain.exit_code == 0, plain.output  # rewritten whole, it reads intact on its own
    result = cli(database_url, monkeypatch, "verify", "--expect", anchor)
    assert result.exit_code == 1
    assert f"TAMPERED at revision {noted[0]}" in result.output and "rewritten since" in result.output


def test_expect_finds_a_log_cut_back(store, database_url, monkeypatch):
    db, api = store
    latest = api.revision()
    noted = cli(database_url, monkeypatch, "head").output.split()
    tamper(db, f"DELETE FROM changes WHERE revision = {latest}", f"UPDATE revision_counter SET revision = {latest - 1}")
    tamper(db, "DELETE FROM support_agents")  # what the cut entry did
    assert cli(database_url, monkeypatch, "verify").exit_code == 0
    result = cli(database_url, monkeypatch, "verify", "--expect", f"{noted[0]}:{noted[1]}")
    assert result.exit_code == 1 and "no longer in the log" in result.output


@pytest.mark.parametrize("bad", ["12", "x:abc", "3:" + "g" * 64, "-1:" + "a" * 64, "99999999999999999999:" + "a" * 64])
def test_a_bad_anchor_is_refused(store, database_url, monkeypatch, bad):
    result = cli(database_url, monkeypatch, "verify", "--expect", bad)
    assert result.exit_code == 2 and "REVISION:SHA256" in result.output


def _rewrite_from(db, revision: int, after: str) -> None:
    """Edit one entry, then recompute every hash from it on: what someone with write access could do."""
    from models.tables import ChangeRow

    with db.write() as session:
        entries = session.query(ChangeRow).where(ChangeRow.revision >= revision).order_by(ChangeRow.revision).all()
        prev_hash = session.get(ChangeRow, revision - 1).hash
        for entry in entries:
            if entry.revision == revision:
                entry.after = after
            entry.prev_hash = prev_hash
            entry.hash = changelog.entry_hash(changelog.entry_fields(entry))
            prev_hash = entry.hash


@pytest.mark.parametrize(
    "row",
    [
        (1, "2026-01-01T00:00:00.000000Z", "account.create", "acc_1", "u_1", None, "k", "{}", '{"name":"Café «x»"}', "0" * 64),
        (2**62, "t", "member.remove", None, None, "u_é\u2028", None, '{"role":"admin"}', '{"role":null}', "f" * 64),
        (7, "t", 'quote"back\\slash', "a\x01b", "\U0001f600", "x", "y", "[]", "\"\"", "a" * 64),
    ],
)
def test_the_fast_row_hash_is_the_entry_hash(row):
    assert changelog.row_hash((*row, None)) == changelog.entry_hash(dict(zip(changelog.HASHED_FIELDS, row, strict=True)))


def test_a_long_verification_is_never_idle_in_its_transaction(monkeypatch):
    """A walk of 50,000 entries slowed to last longer than PostgreSQL's idle-in-transaction timeout (2 s here,
    the service sets 10 s) still ends: the transaction is never idle for long, it fetches as it goes.

    The test process's own heap is frozen first: after the rest of the suite it holds millions of objects,
    and one full collection of them pauses it for over a second, whatever the code under test does.
    """
    import gc
    import time

    from bench import audit_scale
    from bench.datasets import Shape
    from models import database, verification
    from tests.conftest import new_postgres_database

    options = database.POSTGRES_CONNECT_ARGS["options"].replace("=10000", "=2000")
    assert options != database.POSTGRES_CONNECT_ARGS["options"]
    monkeypatch.setitem(database.POSTGRES_CONNECT_ARGS, "options", options)
    hashed = 0

    def slow_row_hash(row):
        nonlocal hashed
        hashed += 1
        if hashed % 1000 == 0:
            time.sleep(0.05)  # 2.5 s over the walk, at most 0.25 s between two fetches of 5,000 rows
        return changelog.row_hash(row)

    monkeypatch.setattr(verification, "row_hash", slow_row_hash)
    with new_postgres_database() as url:
        assert audit_scale.build(url, Shape(accounts=10_000, memberships=30_000)) == 50_000
        db = database.Database(url)
        gc.collect()
        gc.freeze()
        try:
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == "2s"
            started = time.monotonic()
            result = verify_log(db)
            assert time.monotonic() - started > 2.5
            assert result.ok and result.entries == 50_000 and result.drift_count == 0 and hashed == 50_000
        finally:
            gc.unfreeze()
            db.dispose()
