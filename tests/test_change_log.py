"""The change log is verifiable: editing, deleting or reordering entries in the database is reported."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from service.cli import main


@pytest.fixture
def logged(app, api):
    api.create_account("acc_b", "u_client")
    api.invite("acc_b", "u_partner", "payment_manager")
    api.settings("acc_b", "u_partner", restrict_subscription_to_payment_manager=True)
    api.put("/v1/support-agents/u_support")
    api.invite("acc_b", "u_reader", "reader")
    return app.extensions["authz"].db, api


def tamper(db, *statements: str) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def verification(api) -> dict:
    answer = api.get("/v1/changes/verify")
    assert answer.status == 200
    return answer.json


def test_an_intact_log_verifies(logged):
    _db, api = logged
    latest = api.revision()
    head = api.get(f"/v1/changes?after={latest - 1}").json["changes"][0]["hash"]
    answer = verification(api)
    assert answer.pop("compared_at").startswith("20")
    assert answer == {
        "ok": True, "entries": latest, "revision": latest, "first_bad_revision": None, "problem": None, "drift": [],
        "drift_count": 0, "head": {"revision": latest, "sha256": head}, "unchecked": 0, "compared_revision": latest,
    }


def test_an_edited_entry_is_found(logged):
    db, api = logged
    tamper(db, """UPDATE changes SET after = '{"role":"admin"}' WHERE kind = 'member.invite' AND user_id = 'u_partner'""")
    edited = api.get("/v1/changes?account=acc_b").json["changes"][1]["revision"]
    result = verification(api)
    assert result["ok"] is False and result["first_bad_revision"] == edited
    assert "edited" in result["problem"]


def test_an_edited_actor_or_time_is_found(logged):
    db, api = logged
    tamper(db, "UPDATE changes SET acting_user = 'u_somebody_else' WHERE revision = 3")
    assert verification(api)["first_bad_revision"] == 3


def test_a_deleted_entry_is_found(logged):
    db, api = logged
    tamper(db, "DELETE FROM changes WHERE revision = 2")
    result = verification(api)
    assert result["ok"] is False and result["first_bad_revision"] == 2
    assert "missing" in result["problem"]


def test_deleted_last_entries_are_found(logged):
    db, api = logged
    latest = api.revision()
    tamper(db, f"DELETE FROM changes WHERE revision >= {latest - 1}")
    result = verification(api)
    assert result["ok"] is False and result["first_bad_revision"] == latest - 1
    assert "last entries were deleted" in result["problem"]


def test_reordered_entries_are_found(logged):
    db, api = logged
    tamper(
        db,
        "UPDATE changes SET revision = -1 WHERE revision = 2",
        "UPDATE changes SET revision = 2 WHERE revision = 3",
        "UPDATE changes SET revision = 3 WHERE revision = -1",
    )
    result = verification(api)
    assert result["ok"] is False and result["first_bad_revision"] == 2


def test_a_recomputed_hash_does_not_hide_an_edit(logged):
    """Rewriting one entry's hash to match its new content breaks the link to the next entry."""
    db, api = logged
    from models import changelog
    from models.tables import ChangeRow

    with db.write() as session:
        entry = session.get(ChangeRow, 2)
        entry.after = '{"role":"reader"}'
        entry.hash = changelog.entry_hash(changelog.entry_fields(entry))
    result = verification(api)
    assert result["ok"] is False and result["first_bad_revision"] == 3


def test_a_fact_changed_behind_the_logs_back_is_found(logged):
    db, api = logged
    tamper(db, "UPDATE memberships SET role = 'admin' WHERE user_id = 'u_reader'")
    result = verification(api)
    assert result["ok"] is False and result["first_bad_revision"] is None
    assert result["drift"] == ["membership ('acc_b', 'u_reader'): the table says admin, the log says reader"]


def test_a_key_slipped_into_the_table_is_found(logged):
    db, api = logged
    tamper(
        db,
        "INSERT INTO api_keys (id, name, secret_sha256, scopes, created_at) "
        "VALUES ('intruder', 'x', 'abc', 'check,write', '2026-01-01')",
        "UPDATE accounts SET restrict_subscription_to_payment_manager = false",
    )
    drift = verification(api)["drift"]
    assert any(line.startswith("API key") and "intruder" in line and "not in the log" in line for line in drift)
    assert any(line.startswith("account acc_b") for line in drift)


def test_authz_changes_verify_exits_1_when_tampered(logged, database_url, monkeypatch):
    db, _api = logged
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(main, ["changes", "verify"]).exit_code == 0
    tamper(db, "UPDATE changes SET at = '2020-01-01T00:00:00.000000Z' WHERE revision = 4")
    result = runner.invoke(main, ["changes", "verify"])
    assert result.exit_code == 1 and "TAMPERED at revision 4" in result.output


def test_the_log_needs_write_or_audit_scope(app, api):
    from service.core.api_keys import create_key

    db = app.extensions["authz"].db
    _id, auditor = create_key(db, "auditor", ["audit"])
    _id, checker = create_key(db, "checker", ["check"])
    assert api.with_key(auditor).get("/v1/changes/verify").status == 200
    assert api.with_key(auditor).get("/v1/changes").status == 200
    assert api.with_key(checker).get("/v1/changes").status == 403
    assert api.with_key(auditor).post("/v1/accounts", {"id": "a", "name": "A", "admin": "u"}).status == 403
