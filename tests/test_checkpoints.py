"""Signed checkpoints (AUTHZ_CHECKPOINT_KEY) and verification from the last verified point (the tail only)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from models import changelog, checkpoints
from models.tables import ChangeRow
from service.app import create_app
from service.cli import main
from service.core import records as records_module
from service.core.records import Records
from tests.support import TEST_KEY, Api, flask_transport

KEY = "a checkpoint key kept away from the database"


@pytest.fixture
def every_ten(monkeypatch):
    monkeypatch.setattr(checkpoints, "EVERY", 10)
    monkeypatch.setattr(records_module, "EVERY", 10)


@pytest.fixture
def signed(database_url, every_ten):
    app = create_app(
        {"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False, "AUTHZ_CHECKPOINT_KEY": KEY}
    )
    yield app, Api(flask_transport(app.test_client()))
    runtime = app.extensions["authz"]
    runtime.close()


def write(api: Api, count: int, prefix: str = "acc") -> None:
    for number in range(count):
        assert api.create_account(f"{prefix}_{number:03d}", f"u_admin_{number}").status == 201


def stored_checkpoints(db) -> list[tuple]:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT revision, hash, signature FROM checkpoints ORDER BY revision")).all()


def tamper(db, *statements: str) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def verify(database_url, monkeypatch, *args: str, key: str | None = KEY):
    monkeypatch.setenv("DATABASE_URL", database_url)
    if key is None:
        monkeypatch.delenv("AUTHZ_CHECKPOINT_KEY", raising=False)
    else:
        monkeypatch.setenv("AUTHZ_CHECKPOINT_KEY", key)
    return CliRunner().invoke(main, ["changes", "verify", *args])


def rewrite_from(db, revision: int, acting_user: str) -> None:
    """Edit one entry and recompute every hash from it on: what someone with write access but no key could do."""
    with db.write() as session:
        entries = session.query(ChangeRow).where(ChangeRow.revision >= revision).order_by(ChangeRow.revision).all()
        prev_hash = session.get(ChangeRow, revision - 1).hash if revision > 1 else changelog.GENESIS_HASH
        for entry in entries:
            if entry.revision == revision:
                entry.acting_user = acting_user
            entry.prev_hash = prev_hash
            entry.hash = changelog.entry_hash(changelog.entry_fields(entry))
            prev_hash = entry.hash


def test_every_multiple_is_checkpointed_and_signed(signed):
    app, api = signed
    write(api, 25)
    db = app.extensions["authz"].db
    latest = api.revision()
    found = stored_checkpoints(db)
    assert [revision for revision, _hash, _sig in found if revision % 10 == 0] == list(range(10, latest + 1, 10))
    records = Records(db, KEY)
    for revision, sha256, signature in found:
        assert signature == records.sign(revision, sha256)
        assert sha256 == api.get(f"/v1/changes?after={revision - 1}&limit=1").json["changes"][0]["hash"]


def test_a_quiet_log_is_checkpointed_within_the_period(signed, monkeypatch):
    app, api = signed
    monkeypatch.setattr(records_module, "CHECKPOINT_SECONDS", 0.2)
    app.extensions["authz"].records.close()  # a timer of the old period
    write(api, 3)
    time.sleep(0.6)
    assert stored_checkpoints(app.extensions["authz"].db)[-1][0] == api.revision()


def test_a_rewrite_without_the_key_is_found(signed, database_url, monkeypatch):
    app, api = signed
    write(api, 25)
    db = app.extensions["authz"].db
    assert verify(database_url, monkeypatch).exit_code == 0
    rewrite_from(db, 3, acting_user="u_mallory")  # who asked for it, rewritten
    assert verify(database_url, monkeypatch, key=None).exit_code == 0  # holds together on its own
    result = verify(database_url, monkeypatch)
    assert result.exit_code == 1 and "TAMPERED at revision 10" in result.output and "rewritten" in result.output


def test_a_forged_or_deleted_checkpoint_is_found(signed, database_url, monkeypatch):
    app, api = signed
    write(api, 35)
    db = app.extensions["authz"].db
    tamper(db, "UPDATE checkpoints SET signature = '" + "0" * 64 + "' WHERE revision = 20")
    result = verify(database_url, monkeypatch)
    assert result.exit_code == 1 and "revision 20 is not signed with the checkpoint key" in result.output
    tamper(db, "DELETE FROM checkpoints WHERE revision = 20")
    result = verify(database_url, monkeypatch)
    assert result.exit_code == 1 and "checkpoint at revision 20 was deleted" in result.output


def test_entries_cut_past_a_checkpoint_are_found(signed, database_url, monkeypatch):
    app, api = signed
    write(api, 14)
    cut = api.revision()
    write(api, 6, prefix="late")
    db = app.extensions["authz"].db
    assert stored_checkpoints(db)[-1][0] > cut
    tamper(db, f"DELETE FROM changes WHERE revision > {cut}", f"UPDATE revision_counter SET revision = {cut}",
           "DELETE FROM memberships WHERE account_id LIKE 'late%'", "DELETE FROM accounts WHERE id LIKE 'late%'")
    assert verify(database_url, monkeypatch, key=None).exit_code == 0
    result = verify(database_url, monkeypatch)
    assert result.exit_code == 1 and "past the log's end" in result.output


# -- the tail only -------------------------------------------------------------


@pytest.fixture
def short_tail(monkeypatch):
    monkeypatch.setattr(records_module, "TAIL_LIMIT", 8)


def test_pages_check_the_tail_a_bounded_amount_at_a_time(app, api, short_tail, database_url, monkeypatch):
    records = app.extensions["authz"].records
    write(api, 12)
    assert verify(database_url, monkeypatch, key=None).exit_code == 0  # complete: a verified point at 12
    verified = api.revision()
    write(api, 12, prefix="more")
    first = records.status()
    assert first.ok and first.verification.revision == verified + 8 and first.head.revision == verified + 12
    assert first.unchecked == 4
    second = records.status()
    assert second.ok and second.unchecked == 0 and second.verification.entries == verified + 12
    answer = api.get("/v1/changes/verify").json
    assert answer["ok"] and answer["unchecked"] == 0 and answer["compared_revision"] == verified


def test_a_tail_found_broken_stays_reported_until_verified_again(app, api, short_tail, database_url, monkeypatch):
    records = app.extensions["authz"].records
    write(api, 12)
    assert verify(database_url, monkeypatch, key=None).exit_code == 0
    bad = api.revision() + 3
    write(api, 6, prefix="more")
    tamper(app.extensions["authz"].db, f"UPDATE changes SET acting_user = 'u_else' WHERE revision = {bad}")
    status = records.status()
    assert not status.ok and status.verification.first_bad_revision == bad
    assert status.altered_at_or_before(bad) and not status.altered_at_or_before(bad - 1)
    page = api.get("/audit/changes")
    assert page.status == 200 and f'data-status="tampered" data-revision="{bad}"' in page.raw.decode()
    tamper(app.extensions["authz"].db, f"UPDATE changes SET acting_user = NULL WHERE revision = {bad}")
    assert records.status().ok


def test_drift_found_by_a_complete_verification_shows_on_every_page(app, api, short_tail, database_url, monkeypatch):
    write(api, 12)
    tamper(app.extensions["authz"].db, "UPDATE memberships SET role = 'reader' WHERE account_id = 'acc_004'")
    assert verify(database_url, monkeypatch, key=None).exit_code == 1
    status = app.extensions["authz"].records.status()
    assert not status.ok and status.verification.drift_count == 1
    body = api.get("/audit/").raw.decode()
    assert 'data-status="tampered"' in body and "acc_004" in body


def test_a_short_log_over_large_tables_is_not_compared_inside_a_request(app, api, short_tail, database_url, monkeypatch):
    """A bulk-loaded store: its tables are compared with the log by `authz changes verify`, never by a page."""
    write(api, 2)
    values = ", ".join(f"('bulk_{number:03d}', 'B', false, true)" for number in range(20))
    tamper(app.extensions["authz"].db, f"INSERT INTO accounts VALUES {values}")
    status = app.extensions["authz"].records.status()
    assert status.ok and status.compared_at is None and status.unchecked == 0
    assert "have not been compared with the log yet" in api.get("/audit/").raw.decode()
    result = verify(database_url, monkeypatch, key=None)
    assert result.exit_code == 1 and "20 differences" in result.output
    assert not app.extensions["authz"].records.status().ok  # the pages now say so


def test_with_the_key_a_verification_slipped_into_the_table_is_ignored(signed, short_tail, database_url, monkeypatch):
    app, api = signed
    write(api, 12)
    assert verify(database_url, monkeypatch).exit_code == 0
    records = app.extensions["authz"].records
    head = records.head()
    tamper(app.extensions["authz"].db,
           "INSERT INTO verifications (at, complete, ok, checked_from, revision, hash, entries, problem, drift_count, drift) "
           f"VALUES ('2030-01-01', true, false, 0, {head.revision}, '{head.sha256}', 1, 'forged', 1, '[\"x\"]')")
    assert records.status().ok
    assert not Records(app.extensions["authz"].db).status().ok  # without the key, it would count
