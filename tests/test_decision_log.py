"""The decision log (SPEC "Decision log"): what is recorded, when it is readable, how it is queried and forgotten."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from service.app import create_app
from service.core.api_keys import create_key
from service.core.decision_log import Asker, DecisionLog, settings_from
from tests.support import TEST_KEY, Api, account, flask_transport, user

A, B = "acc_1", "acc_2"


@pytest.fixture
def seeded(api):
    """acc_1: u_admin admin, u_reader reader, u_pm payment manager; acc_2: u_other admin."""
    api.create_account(A, "u_admin")
    assert api.invite(A, "u_reader", "reader", acting_user="u_admin").status == 201
    assert api.invite(A, "u_pm", "payment_manager", acting_user="u_admin").status == 201
    api.create_account(B, "u_other")
    return api


def _log(app) -> DecisionLog:
    return app.extensions["authz"].decision_log


def _decisions(api: Api, query: str = "") -> list[dict]:
    answer = api.get(f"/v1/decisions{query}")
    assert answer.status == 200, answer
    return answer.json["decisions"]


def _flushed(app, api: Api, query: str = "") -> list[dict]:
    _log(app).flush()
    return _decisions(api, query)


def test_a_decision_is_readable_within_two_seconds_without_a_flush(app, seeded):
    assert seeded.allowed("u_reader", "view_workspace", account(A))
    deadline = time.monotonic() + 2
    found = []
    while not found and time.monotonic() < deadline:
        found = _decisions(seeded, "?actor=u_reader")
        time.sleep(0.05)
    assert len(found) == 1, "not readable within 2 seconds"
    record = found[0]
    assert record["endpoint"] == "/v1/authorize" and record["action"] == "view_workspace"
    assert record["resource"] == {"type": "Account", "id": A} and record["account"] == A
    assert record["allowed"] is True and record["code"] is None
    assert record["api_key"] == "preshared" and len(record["request_id"]) >= 1
    assert record["revision"] == seeded.last_revision
    assert record["policy"] == seeded.get("/v1/policy").json["sha256"]
    assert datetime.fromisoformat(record["time"]) > datetime.now(UTC) - timedelta(minutes=1)


def test_every_decision_endpoint_is_recorded(app, seeded):
    headers = {"X-Request-Id": "req-batch-1"}
    pm = {"type": "PaymentMethod", "id": "pm_1", "account": A, "owner": "u_pm"}
    checks = [
        {"actor": user("u_reader"), "action": "view_workspace", "resource": account(A)},
        {"actor": user("u_reader"), "action": "manage_members", "resource": account(A)},
        {"actor": user("u_pm"), "action": "delete", "resource": pm},
    ]
    assert seeded.post("/v1/authorize/batch", {"checks": checks}, headers=headers).status == 200
    actions = seeded.post("/v1/actions", {"actor": user("u_pm"), "resource": account(A)}).json["actions"]
    listed = seeded.post("/v1/list", {"actor": user("u_admin"), "action": "read", "resource_type": "Account"})
    assert listed.json["ids"] == [A]

    records = _flushed(app, seeded)
    batch = [r for r in records if r["endpoint"] == "/v1/authorize/batch"]
    assert [(r["actor"], r["action"], r["resource"], r["allowed"]) for r in batch] == [
        ("u_reader", "view_workspace", account(A), True),
        ("u_reader", "manage_members", account(A), False),
        ("u_pm", "delete", pm, True),
    ]
    assert {r["request_id"] for r in batch} == {"req-batch-1"} and batch[2]["account"] == A
    per_action = {r["action"]: r["allowed"] for r in records if r["endpoint"] == "/v1/actions"}
    assert sorted(a for a, allowed in per_action.items() if allowed) == actions
    assert per_action["view_workspace"] is False  # a payment manager holds no workspace permission
    (listing,) = [r for r in records if r["endpoint"] == "/v1/list"]
    assert (listing["actor"], listing["action"], listing["resource"], listing["allowed"]) == (
        "u_admin", "read", {"type": "Account"}, True,
    )
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)  # oldest first


def test_refused_writes_are_recorded_with_their_code(app, seeded):
    assert seeded.invite(A, "u_x", "admin", acting_user="u_reader").status == 403
    assert seeded.post("/v1/accounts", {"id": A, "name": "again", "admin": "u_9"}).status == 409
    assert seeded.settings(A, acting_user="u_pm", restrict_subscription_to_payment_manager=True).status == 200
    removed = seeded.delete(f"/v1/accounts/{A}/members/u_pm?acting_user=u_admin")
    assert removed.status == 409 and removed.error_code == "payment_manager_protected"
    assert seeded.get(f"/v1/accounts/{A}/members?acting_user=u_reader").status == 403  # a read: not a write

    refused = [r for r in _flushed(app, seeded, "?allowed=false") if r["code"] is not None]
    assert [(r["actor"], r["action"], r["resource"], r["code"], r["endpoint"]) for r in refused] == [
        ("u_reader", "invite", {"type": "Membership", "account": A, "user": "u_x"}, "forbidden",
         "/v1/accounts/<account_id>/members"),
        (None, "create", account(A), "account_exists", "/v1/accounts"),
        ("u_admin", "remove", {"type": "Membership", "account": A, "user": "u_pm"}, "payment_manager_protected",
         "/v1/accounts/<account_id>/members/<user>"),
    ]
    assert all(r["allowed"] is False and r["account"] == A and len(r["policy"]) == 64 for r in refused)


def test_filters_and_pages(app, seeded):
    before = datetime.now(UTC)
    seeded.allowed("u_reader", "view_workspace", account(A))
    seeded.allowed("u_reader", "edit_workspace", account(A))
    seeded.allowed("u_other", "view_workspace", account(B))
    seeded.allowed("u_pm", "view", {"type": "Subscription", "id": "sub_1", "account": A})
    seeded.allowed("u_pm", "remove", {"type": "Membership", "account": B, "user": "u_other"})
    _log(app).flush()

    def triples(query):
        return [(r["actor"], r["action"], r["allowed"]) for r in _decisions(seeded, query)]

    assert triples("?actor=u_reader") == [("u_reader", "view_workspace", True), ("u_reader", "edit_workspace", False)]
    assert triples(f"?account={A}") == [
        ("u_reader", "view_workspace", True), ("u_reader", "edit_workspace", False), ("u_pm", "view", True),
    ]
    assert triples(f"?account={B}") == [("u_other", "view_workspace", True), ("u_pm", "remove", False)]
    assert triples("?action=view_workspace&allowed=true") == [
        ("u_reader", "view_workspace", True), ("u_other", "view_workspace", True),
    ]
    since = (before - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert len(triples(f"?since={since}")) == 5
    assert triples(f"?until={since}") == []
    assert triples("?since=2999-01-01") == []

    first = seeded.get("/v1/decisions?limit=2").json
    assert len(first["decisions"]) == 2 and first["next_after"] == first["decisions"][-1]["id"]
    rest = seeded.get(f"/v1/decisions?limit=2&after={first['next_after']}").json
    last = seeded.get(f"/v1/decisions?limit=2&after={rest['next_after']}").json
    assert len(rest["decisions"]) == 2 and len(last["decisions"]) == 1 and last["next_after"] is None
    ids = [r["id"] for page in (first, rest, last) for r in page["decisions"]]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(
    "query",
    [
        "?allowed=yes", "?allowed=1", "?since=yesterday", "?since=2026-13-01", "?limit=0", "?limit=1001",
        "?after=-1", "?actor=a%20b", "?account=..", "?unknown=1", "?actor=u_1&actor=u_2",
        "?since=2026-12-02&until=2026-12-01", "?action=" + "x" * 65,
    ],
)
def test_bad_queries_are_refused(api, query):
    answer = api.get(f"/v1/decisions{query}")
    assert answer.status == 400 and answer.error_code == "invalid_request", (query, answer)


def test_the_audit_scope_is_needed(app, api):
    runtime = app.extensions["authz"]
    _, check_key = create_key(runtime.db, "billing-service", ["check"])
    _, audit_key = create_key(runtime.db, "auditor", ["audit"])
    checker = api.with_key(check_key)
    assert checker.get("/v1/decisions").status == 403
    assert api.with_key(None).get("/v1/decisions").status == 401
    assert checker.post("/v1/authorize", {"actor": user("u_1"), "action": "read", "resource": account(A)}).status == 200
    _log(app).flush()
    (record,) = _decisions(api.with_key(audit_key))
    assert record["api_key"] == "billing-service"  # the key's name, never its secret


@pytest.mark.parametrize("level", ["denied", "off"])
def test_the_level_setting(database_url, level):
    app = create_app({"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False,
                      "AUTHZ_DECISION_LOG": level})
    try:
        api = Api(flask_transport(app.test_client()))
        api.create_account(A, "u_admin")
        assert api.allowed("u_admin", "read", account(A))
        assert not api.allowed("u_stranger", "read", account(A))
        checks = [{"actor": user(u), "action": "read", "resource": account(A)} for u in ("u_admin", "u_nobody")]
        assert api.post("/v1/authorize/batch", {"checks": checks}).status == 200
        records = _flushed(app, api)
        expected = [] if level == "off" else [("u_stranger", False), ("u_nobody", False)]
        assert [(r["actor"], r["allowed"]) for r in records] == expected
    finally:
        app.extensions["authz"].close()


def test_bad_settings_stop_the_start():
    with pytest.raises(ValueError, match="AUTHZ_DECISION_LOG must be"):
        settings_from({"AUTHZ_DECISION_LOG": "some"})
    for days in ("0", "-3", "ninety", "1.5"):
        with pytest.raises(ValueError, match="RETENTION_DAYS"):
            settings_from({"AUTHZ_DECISION_LOG_RETENTION_DAYS": days})
    assert settings_from({"AUTHZ_DECISION_LOG": "Denied", "AUTHZ_DECISION_LOG_RETENTION_DAYS": "30"}) == ("denied", 30)


def _metric(api: Api, name: str) -> float:
    text = api.get("/metrics").raw.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_full_buffer_drops_and_counts_never_waits(app, api):
    decision_log = _log(app)
    dropped_before = _metric(api, "authz_decision_log_dropped_total")
    written_before = _metric(api, "authz_decision_log_written_total")
    decision_log.capacity = 3
    decision_log._stopping.set()  # noqa: SLF001 - hold the writer so the buffer fills
    if decision_log._thread is not None:  # noqa: SLF001
        decision_log._thread.join()  # noqa: SLF001
    decision_log._thread_pid = os.getpid()  # noqa: SLF001 - and no new writer starts
    asker = Asker("r1", "k", "/v1/authorize")
    for index in range(5):
        decision_log.decision(asker, f"u_{index}", "read", account(A), True, revision=1, policy="p" * 64)
    assert len(decision_log._buffer) == 3  # noqa: SLF001
    assert _metric(api, "authz_decision_log_dropped_total") - dropped_before == 2
    assert decision_log.flush() == 3
    assert _metric(api, "authz_decision_log_written_total") - written_before == 3
    assert [r["actor"] for r in _decisions(api)] == ["u_0", "u_1", "u_2"]


def test_close_writes_what_is_buffered(database_url):
    app = create_app({"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False})
    api = Api(flask_transport(app.test_client()))
    app.extensions["authz"].decision_log.flush_interval = 3600  # nothing is written before the shutdown
    assert not api.allowed("u_1", "read", account(A))
    app.extensions["authz"].close()
    assert [r["actor"] for r in _decisions(api)] == ["u_1"]
    app.extensions["authz"].db.dispose()


def test_retention_forgets_whole_old_days_only(app, api):
    decision_log = _log(app)
    now = datetime.now(UTC)
    rows = []
    for days_ago in (200, 95, 91, 89, 10, 0):
        rows.append((
            now - timedelta(days=days_ago), f"r{days_ago}", "k", "/x", f"u_{days_ago}", "read",
            '{"type":"Account","id":"acc_1"}', A, True, None, 1, "p",
        ))
    decision_log.storage.insert(rows)
    assert decision_log.storage.count() == 6
    gone = decision_log.apply_retention(now)
    # SQLite deletes the 3 rows; PostgreSQL drops their days (and the empty days made ahead after them).
    assert gone == 3 if decision_log.storage.db.is_sqlite else gone >= 3
    assert sorted(r["actor"] for r in _decisions(api)) == ["u_0", "u_10", "u_89"]
    assert decision_log.apply_retention(now) == 0


# -- the command-line tool and the auditor's page ---------------------------------


def test_authz_decisions(app, seeded, database_url, monkeypatch):
    from click.testing import CliRunner

    from service.cli import main

    seeded.allowed("u_reader", "view_workspace", account(A))
    seeded.allowed("u_reader", "manage_members", account(A))
    _log(app).flush()
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*args: str):
        return CliRunner().invoke(main, ["decisions", *args], catch_exceptions=False)

    table = run("--actor", "u_reader")
    assert table.exit_code == 0 and len(table.output.splitlines()) == 2
    assert "view_workspace" in table.output and "denied" in table.output.splitlines()[1]
    as_json = json.loads(run("--actor", "u_reader", "--allowed", "false", "--json").output)
    assert [d["action"] for d in as_json["decisions"]] == ["manage_members"] and as_json["next_after"] is None
    rows = list(csv.reader(io.StringIO(run("--account", A, "--csv").output)))
    assert rows[0][:6] == ["id", "time", "request_id", "api_key", "endpoint", "actor"]
    assert [row[6] for row in rows[1:]] == ["view_workspace", "manage_members"]
    assert json.loads(rows[1][7]) == account(A)
    for bad in (["--since", "someday"], ["--limit", "0"], ["--actor", "a b"], ["--json", "--csv"]):
        assert run(*bad).exit_code == 2, bad


def test_the_audit_page_filters_pages_and_exports(app, seeded):
    from tests.audit_html import page, parse

    for action in ("view_workspace", "manage_members", "edit_workspace"):
        seeded.allowed("u_reader", action, account(A))
    assert seeded.invite(A, "u_y", "reader", acting_user="u_reader").status == 403
    _log(app).flush()
    client = app.test_client()
    html = parse(page(client, "/audit/decisions?actor=u_reader&allowed=false").get_data(as_text=True))
    rows = html.find_all("tr", class_="denied")
    assert [row.find_all("td")[3].text for row in rows] == ["manage_members", "edit_workspace", "invite"]
    assert "refused forbidden" in rows[2].text
    first = parse(page(client, "/audit/decisions?actor=u_reader&limit=2").get_data(as_text=True))
    assert len(first.find_all("tr", class_="allowed") + first.find_all("tr", class_="denied")) == 2
    (next_link,) = first.find_all("a", id="next")
    rest = parse(page(client, next_link.attributes["href"].replace("&amp;", "&")).get_data(as_text=True))
    assert [row.find_all("td")[3].text for row in rest.find_all("tr", class_="denied")] == ["edit_workspace", "invite"]
    exported = client.get("/audit/decisions?actor=u_reader&format=csv", headers=_basic())
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert lines[0][0] == "id" and len(lines) == 5
    bad = client.get("/audit/decisions?since=nope", headers=_basic())
    assert bad.status_code == 400 and "since" in bad.get_data(as_text=True)
    assert client.get("/audit/decisions?format=pdf", headers=_basic()).status_code == 400
    overview = page(client, "/audit/").get_data(as_text=True)
    assert 'href="/audit/decisions"' in overview


def _basic() -> dict:
    from tests.audit_html import basic

    return basic(TEST_KEY)


@pytest.mark.parametrize(
    "path", ["/audit/decisions?surprise=1", "/audit/decisions?actor=u_1&actor=u_2", "/audit/access-review?colour=red",
             "/audit/access-review?account=acc_1&account=acc_2", "/audit/decisions?limit=%2B5"],
)
def test_the_pages_read_query_strings_strictly(app, path):
    from tests.audit_html import page

    page(app.test_client(), path, 400)


def test_decisions_never_wait_on_the_writer(app, api):
    """The writer is stuck inside a batch (a database that hangs): decisions keep answering, their records wait."""
    import threading

    decision_log = _log(app)
    entered, release = threading.Event(), threading.Event()
    storage = decision_log.storage

    def stuck(insert):
        def stuck_insert(*arguments):
            entered.set()
            release.wait(60)
            insert(*arguments)
        return stuck_insert

    storage.insert, storage.insert_records = stuck(storage.insert), stuck(storage.insert_records)  # both ways in
    try:
        assert not api.allowed("u_first", "read", account(A))
        assert entered.wait(5), "the writer did not start"
        for index in range(20):
            assert not api.allowed(f"u_{index}", "read", account(A))
        assert not release.is_set() and len(decision_log._buffer) == 20  # noqa: SLF001 - answered, still buffered
    finally:
        release.set()
    decision_log.flush()
    assert len(_decisions(api, "?limit=1000")) == 21


def test_a_flush_writes_what_was_buffered_when_it_began_not_what_arrives_meanwhile(app, api):
    """Under steady traffic, records arrive while a batch is written. A flush that drained until the buffer
    was empty never ended, writing a handful of records per transaction, back to back (measured: 3,368
    transactions of 6 records for 20,000 decisions, where 16 were due): it writes what it found, once."""
    decision_log = _log(app)
    decision_log._stopping.set()  # noqa: SLF001 - this test writes itself
    if decision_log._thread is not None:  # noqa: SLF001
        decision_log._thread.join()  # noqa: SLF001
    decision_log._thread_pid = os.getpid()  # noqa: SLF001
    storage = decision_log.storage
    insert_records, batches = storage.insert_records, []

    def meanwhile(records):  # while each of the first three batches is written, three more decisions are answered
        batches.append(len(records))
        for index in range(3 if len(batches) <= 3 else 0):
            decision_log.decision(Asker("r", "k", "/v1/authorize"), f"u_later_{len(batches)}_{index}", "read",
                                  account(A), True, revision=1, policy="p")
        insert_records(records)

    storage.insert_records = meanwhile
    try:
        for index in range(5):
            decision_log.decision(Asker("r", "k", "/v1/authorize"), f"u_{index}", "read", account(A), True,
                                  revision=1, policy="p")
        assert decision_log.flush() == 5
        assert batches == [5] and len(decision_log._buffer) == 3  # noqa: SLF001 - the later ones wait
        assert decision_log.flush() == 3
        assert batches == [5, 3] and len(decision_log._buffer) == 3  # noqa: SLF001
    finally:
        storage.insert_records = insert_records
    assert decision_log.flush() == 3
    assert len(_decisions(api, "?limit=1000")) == 11


def test_a_refused_write_names_the_latest_revision(app, seeded):
    removed = seeded.delete(f"/v1/accounts/{A}/members/u_admin?acting_user=u_reader")
    assert removed.status == 403
    (record,) = _flushed(app, seeded, "?allowed=false&action=remove")
    assert record["revision"] == seeded.revision()


def test_a_batch_the_database_refuses_is_dropped_and_counted(app, api):
    from sqlalchemy.exc import OperationalError

    decision_log = _log(app)
    decision_log._stopping.set()  # noqa: SLF001 - this test writes itself
    if decision_log._thread is not None:  # noqa: SLF001
        decision_log._thread.join()  # noqa: SLF001
    decision_log._thread_pid = os.getpid()  # noqa: SLF001
    failed_before = _metric(api, 'authz_decision_log_dropped_total{reason="write_failed"}')

    def refuse(*arguments):
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    storage = decision_log.storage
    insert, insert_records = storage.insert, storage.insert_records
    storage.insert = storage.insert_records = refuse  # the one-statement way in and the row-by-row one
    for index in range(3):
        decision_log.decision(Asker("r", "k", "/v1/authorize"), f"u_{index}", "read", account(A), True,
                              revision=1, policy="p")
    assert decision_log.flush() == 0 and not decision_log._buffer  # noqa: SLF001 - dropped, never retried forever
    assert _metric(api, 'authz_decision_log_dropped_total{reason="write_failed"}') - failed_before == 3
    storage.insert, storage.insert_records = insert, insert_records
    decision_log.decision(Asker("r", "k", "/v1/authorize"), "u_after", "read", account(A), True, revision=1, policy="p")
    assert decision_log.flush() == 1
    assert [r["actor"] for r in _decisions(api)] == ["u_after"]


def test_batches_share_one_connection_and_one_the_server_dropped_loses_nothing(app, api):
    """PostgreSQL: the writer keeps one connection for its batches (one statement each, no transaction around
    it); killed by the server, the batch it was writing goes in the row-by-row way and the next opens another."""
    decision_log = _log(app)
    if decision_log.storage.db.is_sqlite:
        pytest.skip("SQLite's batches are written in a transaction of their own, on the pool's connection")
    decision_log._stopping.set()  # noqa: SLF001 - this test writes itself
    if decision_log._thread is not None:  # noqa: SLF001
        decision_log._thread.join()  # noqa: SLF001
    decision_log._thread_pid = os.getpid()  # noqa: SLF001
    storage = decision_log.storage

    def record(actor: str) -> None:
        decision_log.decision(Asker("r", "k", "/v1/authorize"), actor, "read", account(A), True, revision=1, policy="p")

    def backend() -> int:
        return storage._writer.connection.driver_connection.info.backend_pid  # noqa: SLF001

    record("u_1")
    assert decision_log.flush() == 1
    first = backend()
    record("u_2")
    assert decision_log.flush() == 1 and backend() == first
    with storage.db.engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend({first})")
    record("u_3")
    record("u_4")
    assert decision_log.flush() == 2  # the one statement failed; row by row, on a connection of the pool
    record("u_5")
    assert decision_log.flush() == 1 and backend() != first
    assert [r["actor"] for r in _decisions(api)] == ["u_1", "u_2", "u_3", "u_4", "u_5"]
    decision_log.close()
    assert storage._writer is None  # noqa: SLF001 - given back at shutdown


def test_one_statement_and_row_by_row_store_the_same(app, api):
    """The writer's one-statement insert (records built on the request path) stores exactly what the row-by-row
    way does: time to the microsecond, resource text, account, allowed, code; a resource with NaN is written."""
    from service.core.decision_log import _rows

    decision_log = _log(app)
    decision_log._stopping.set()  # noqa: SLF001 - this test writes itself
    if decision_log._thread is not None:  # noqa: SLF001
        decision_log._thread.join()  # noqa: SLF001
    decision_log._thread_pid = os.getpid()  # noqa: SLF001
    asker = Asker("r-é", "k", "/v1/authorize")
    resources = [
        account(A), {"type": "Workspace", "id": "w\"1", "account": "acc_ü"}, {"type": "PaymentMethod", "id": "pm\u2028"},
        {"type": "Account", "id": "=1+2", "owner": "u_1", "n": 1.5},
    ]
    for index, resource in enumerate(resources):
        decision_log.decision(asker, f"u_{index}", "read", resource, index % 2 == 0, revision=index, policy="p")
    decision_log.refused_write(asker, None, "invite", account(B), "forbidden", revision=None, policy="p")
    batch = list(decision_log._buffer)  # noqa: SLF001
    assert decision_log.flush() == 5
    decision_log.storage.insert(_rows(batch))
    stored = _decisions(api, "?limit=1000")
    fast, slow = stored[:5], stored[5:]
    for row in (*fast, *slow):
        row.pop("id")
    assert fast == slow and [row["resource"] for row in fast] == [*resources, account(B)]
    assert [row["account"] for row in fast] == [A, "acc_ü", None, "=1+2", B]
    assert [row["allowed"] for row in fast] == [True, False, True, False, False] and fast[4]["code"] == "forbidden"
    assert [row["revision"] for row in fast] == [0, 1, 2, 3, None]
    assert datetime.fromisoformat(fast[0]["time"]) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=batch[0][0])

    decision_log.decision(asker, "u_nan", "read", {"type": "Account", "id": "acc_n", "n": float("nan")}, True,
                          revision=1, policy="p")
    assert decision_log.flush() == 1  # NaN is no JSON a database takes: the resource is stored as its text
    assert [row["account"] for row in decision_log.page(actor="u_nan")["decisions"]] == ["acc_n"]
