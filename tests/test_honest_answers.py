"""Answers resting on altered records say so; an account that does not exist is said not to exist (issue 10 item 4)."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from service.cli import main
from tests.support import account, user


def tamper(db, *statements: str) -> None:
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def story(api) -> tuple[int, int]:
    """acc_b restricted to its payment manager; answers (the revision of u_client's admin role, the last revision)."""
    created = api.create_account("acc_b", "u_client").json["revision"]
    api.invite("acc_b", "u_partner", "payment_manager")
    api.settings("acc_b", "u_partner", restrict_subscription_to_payment_manager=True)
    return created, api.revision()


def explained(api, actor: str, action: str, resource: dict, **extra) -> dict:
    answer = api.post("/v1/authorize", {"actor": user(actor), "action": action, "resource": resource, "explain": True, **extra})
    assert answer.status == 200, answer
    return answer.json


def test_an_intact_record_carries_no_warning(app, api):
    _created, latest = story(api)
    assert explained(api, "u_client", "view_subscription", account("acc_b"))["warnings"] == []
    as_of = api.post("/v1/authorize", {"actor": user("u_client"), "action": "view_workspace",
                                       "resource": account("acc_b"), "as_of_revision": latest}).json
    assert as_of["warnings"] == [] and as_of["allowed"] is True
    plain = api.post("/v1/authorize", {"actor": user("u_client"), "action": "view_workspace", "resource": account("acc_b")})
    assert "warnings" not in plain.json  # decisions stay as they were


def test_an_answer_as_of_an_edited_revision_warns(app, api):
    """The issue's case: an entry edited, explain as of that revision gave ALLOWED with no warning."""
    db = app.extensions["authz"].db
    created, latest = story(api)
    settings_revision = latest
    tamper(db, f"""UPDATE changes SET after = '{{"restrict_subscription_to_payment_manager": false, """
               f""""auto_add_subscription_invoices_to_purchases": true}}' WHERE revision = {settings_revision}""")
    answer = explained(api, "u_client", "view_subscription", account("acc_b"), as_of_revision=settings_revision)
    assert any(f"altered at revision {settings_revision}" in warning for warning in answer["warnings"])
    before = explained(api, "u_client", "view_workspace", account("acc_b"), as_of_revision=created)
    assert before["warnings"] == []  # before the edited entry, the record holds
    actions = api.post("/v1/actions", {"actor": user("u_client"), "resource": account("acc_b"),
                                       "as_of_revision": settings_revision}).json
    assert any("cannot be trusted" in warning for warning in actions["warnings"])


def test_a_role_edited_in_the_table_is_not_explained_as_fact(app, api):
    db = app.extensions["authz"].db
    story(api)
    api.invite("acc_b", "u_reader", "reader")
    tamper(db, "UPDATE memberships SET role = 'admin' WHERE user_id = 'u_reader'")
    app.extensions["authz"].cache.sync()
    answer = explained(api, "u_reader", "manage_members", account("acc_b"))
    assert any(
        "stored facts of account acc_b differ" in warning and "the table says admin, the log says reader" in warning
        for warning in answer["warnings"]
    )
    other = api.create_account("acc_other", "u_other")
    assert other.status == 201
    assert explained(api, "u_other", "view_workspace", account("acc_other"))["warnings"] == []


def test_an_account_that_does_not_exist_is_said_not_to(app, api):
    created, _latest = story(api)
    answer = explained(api, "u_client", "view_subscription", account("acc_nowhere"))
    explanation = answer["explanation"]
    assert answer["allowed"] is False
    assert explanation["facts"][0] == "account acc_nowhere does not exist: it has no settings and no members"
    assert not any("restrict" in fact or "invoices" in fact for fact in explanation["facts"])
    assert not any("acc_nowhere" in change for change in explanation["would_be_allowed_if"])
    assert "does not exist" in explanation["summary"]
    assert answer["warnings"][0].startswith("account acc_nowhere does not exist")
    earlier = explained(api, "u_partner", "view_subscription", account("acc_b"), as_of_revision=created - 1)
    assert "account acc_b does not exist as of revision" in earlier["explanation"]["facts"][0]


def test_a_support_agent_on_a_missing_account_is_explained_by_the_support_role(app, api):
    api.put("/v1/support-agents/u_support")
    answer = explained(api, "u_support", "view", {"type": "Subscription", "id": "sub_1", "account": "acc_nowhere"})
    assert answer["allowed"] is True
    assert "u_support is a support agent" in answer["explanation"]["summary"]
    assert not any("restrict" in fact for fact in answer["explanation"]["facts"])


def test_the_explain_page_and_command_show_the_warning(app, api, database_url, monkeypatch):
    db = app.extensions["authz"].db
    _created, latest = story(api)
    tamper(db, f"UPDATE changes SET acting_user = 'u_mallory' WHERE revision = {latest}")
    page = api.get(
        f"/audit/explain?actor=u_client&action=view_subscription&type=Account&id=acc_b&as_of_revision={latest}"
    ).raw.decode()
    assert 'data-trusted="false"' in page and "Do not rely on this answer" in page
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(
        main, ["explain", "u_client", "view_subscription", "Account", "id=acc_b", "--as-of-revision", str(latest)]
    )
    assert result.output.startswith(f"WARNING: the change log was found altered at revision {latest}")


def test_after_a_repair_every_worker_drops_its_cached_facts(app, api, database_url, monkeypatch):
    """A fact tampered in the table and cached by a worker; repaired; `cache drop` makes every worker re-read."""
    from service.app import create_app
    from tests.support import TEST_KEY, Api, flask_transport

    story(api)
    api.invite("acc_b", "u_reader", "reader")
    other_worker = create_app({"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False})
    other = Api(flask_transport(other_worker.test_client()))
    try:
        db = app.extensions["authz"].db
        tamper(db, "UPDATE memberships SET role = 'admin' WHERE user_id = 'u_reader'")
        for worker in (api, other):  # both read (and cache) the tampered role
            assert worker.allowed("u_reader", "manage_members", account("acc_b"))
        tamper(db, "UPDATE memberships SET role = 'reader' WHERE user_id = 'u_reader'")  # the repair
        assert other.allowed("u_reader", "manage_members", account("acc_b"))  # still the cached, tampered fact
        dropped = api.post("/v1/cache/drop", {})
        assert dropped.status == 200 and dropped.json["revision"] == api.revision()
        for worker in (api, other):  # at least the drop's revision: PostgreSQL's notification may still be on its way
            assert not worker.allowed("u_reader", "manage_members", account("acc_b"),
                                      at_least_revision=dropped.json["revision"])
        tamper(db, "UPDATE memberships SET role = 'admin' WHERE user_id = 'u_reader'")
        assert other.allowed("u_reader", "manage_members", account("acc_b")) is False  # cached again
        monkeypatch.setenv("DATABASE_URL", database_url)
        result = CliRunner().invoke(main, ["cache", "drop"])
        assert result.exit_code == 0 and "drops its cached facts" in result.output
        assert other.allowed("u_reader", "manage_members", account("acc_b"), at_least_revision=api.revision())
        entry = api.get(f"/v1/changes?after={api.revision() - 1}").json["changes"][0]
        assert entry["kind"] == "cache.drop"
        assert "drop its cached facts" in api.get("/audit/changes").raw.decode()
    finally:
        runtime = other_worker.extensions["authz"]
        runtime.close()


def test_dropping_cached_facts_needs_the_admin_scope(app, api):
    from service.core.api_keys import create_key

    _id, checker = create_key(app.extensions["authz"].db, "checker", ["check", "write", "audit"])
    answer = api.with_key(checker).post("/v1/cache/drop", {})
    assert answer.status == 403 and answer.error_code == "missing_scope"
