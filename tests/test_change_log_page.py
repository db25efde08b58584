"""/audit/changes: filters by account, user, kind and time, pages both ways, CSV; explain as of a date and time."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import text

from tests.support import Api


@pytest.fixture
def logged(app, api: Api):
    """Six changes spread over three days (times set in the log, hashes recomputed so the log stays intact)."""
    api.create_account("acc_b", "u_client")
    api.invite("acc_b", "u_partner", "payment_manager", acting_user="u_client")
    api.settings("acc_b", "u_partner", restrict_subscription_to_payment_manager=True)
    api.create_account("acc_c", "=1+2", name="C")
    api.invite("acc_c", "u_partner", "reader")
    api.put("/v1/support-agents/u_support")
    db = app.extensions["authz"].db
    _set_times(db, ["2026-03-01T10:00:00.000000Z", "2026-03-01T11:00:00.000000Z", "2026-03-02T09:00:00.000000Z",
                    "2026-03-02T12:00:00.000000Z", "2026-03-03T08:00:00.000000Z", "2026-03-03T09:00:00.000000Z"])
    return api


def _set_times(db, times: list[str]) -> None:
    from models import changelog
    from models.tables import ChangeRow

    with db.write() as session:
        entries = session.query(ChangeRow).order_by(ChangeRow.revision).all()
        entries = [entry for entry in entries if entry.kind != "policy.load"]
        for entry, at in zip(entries, times, strict=True):
            entry.at = at
        prev_hash = changelog.GENESIS_HASH
        for entry in session.query(ChangeRow).order_by(ChangeRow.revision).all():
            entry.prev_hash = prev_hash
            entry.hash = changelog.entry_hash(changelog.entry_fields(entry))
            prev_hash = entry.hash


def shown(api: Api, query: str) -> tuple[list[str], str]:
    answer = api.get(f"/audit/changes?{query}")
    assert answer.status == 200, answer
    page = answer.raw.decode()
    return re.findall(r'<td class="what" data-label="what happened">([^<]*)</td>', page), page


def test_filters_by_user_kind_and_time(logged):
    api = logged
    partner, _ = shown(api, "user=u_partner")
    assert partner == [
        "u_client invited u_partner as payment_manager",
        "u_partner restricted subscription management to the payment manager",
        "system invited u_partner as reader",
    ]
    invites, _ = shown(api, "kind=member.invite&account=acc_b")
    assert invites == ["u_client invited u_partner as payment_manager"]
    second_day, page = shown(api, "since=2026-03-02&until=2026-03-03")
    assert len(second_day) == 2 and "Filtered: since = 2026-03-02, until = 2026-03-03" in page
    morning, _ = shown(api, "since=2026-03-01T10:30&until=2026-03-02T10:00")
    assert morning == ["u_client invited u_partner as payment_manager",
                       "u_partner restricted subscription management to the payment manager"]
    nothing, page = shown(api, "user=u_nobody")
    assert nothing == [] and "No change matches these filters" in page
    assert "Head of the change log: revision" in page


def test_pages_both_ways(logged):
    api = logged
    latest = api.revision()
    first, page = shown(api, "limit=2")
    assert len(first) == 2 and 'id="next"' in page and 'id="previous"' not in page
    last, page = shown(api, f"limit=2&before={latest + 1}")
    revisions = [int(r) for r in re.findall(r'data-revision="(\d+)"', page) if int(r) <= latest]
    assert revisions[-2:] == [latest - 1, latest] and 'id="previous"' in page and 'id="next"' not in page
    previous = re.search(r'href="([^"]+)" id="previous"', page).group(1).replace("&amp;", "&")
    before, page = shown(api, previous.split("?", 1)[1])
    assert len(before) == 2 and 'id="next"' in page and 'id="previous"' in page
    assert 'limit=2' in previous  # the filters and the page size are kept


def test_csv_export_of_the_page(logged):
    api = logged
    answer = api.get("/audit/changes?account=acc_c&format=csv")
    assert answer.status == 200
    rows = list(csv.reader(io.StringIO(answer.raw.decode())))
    assert rows[0] == ["revision", "at", "kind", "account", "user", "acting_user", "api_key", "before", "after", "hash"]
    assert [row[2] for row in rows[1:]] == ["account.create", "member.invite"]
    assert rows[1][4] == "'=1+2"  # a spreadsheet formula is written as text


@pytest.mark.parametrize(
    "query, named",
    [
        ("since=yesterday", "since"),
        ("since=2026-03-02&until=2026-03-01", "until"),
        ("after=2&before=5", "after, before"),
        ("kind=" + "x" * 41, "kind"),
        ("limit=10001", "limit"),
        ("format=pdf", "format"),
        ("user=a/b", "user"),
        ("color=red", "color"),
    ],
)
def test_bad_filters_are_a_400_page(logged, query, named):
    answer = logged.get(f"/audit/changes?{query}")
    assert answer.status == 400 and named in answer.raw.decode()


def test_explain_as_of_a_date_and_time(logged, app):
    api = logged
    base = "/audit/explain?actor=u_client&action=view_subscription&type=Account&id=acc_b"
    before_restriction = api.get(base + "&as_of_time=2026-03-02T08:00").raw.decode()
    assert 'id="verdict">ALLOWED' in before_restriction
    assert "as of 2026-03-02 08:00:00 UTC: the latest change written by then" in before_restriction
    after_restriction = api.get(base + "&as_of_time=2026-03-02T10:00:00Z").raw.decode()
    assert 'id="verdict">DENIED' in after_restriction
    both = api.get(base + "&as_of_time=2026-03-02&as_of_revision=2")
    assert both.status == 400 and "not both" in both.raw.decode()
    bad = api.get(base + "&as_of_time=soon")
    assert bad.status == 400 and "ISO 8601" in bad.raw.decode()


def test_every_page_shows_the_head(logged, app):
    with app.extensions["authz"].db.engine.connect() as connection:
        revision, sha256 = connection.execute(text("SELECT revision, hash FROM changes ORDER BY revision DESC LIMIT 1")).one()
    for path in ("/audit/", "/audit/policy", "/audit/matrix", "/audit/changes", "/audit/explain"):
        page = logged.get(path).raw.decode()
        assert f'<span class="mono sha">{sha256}</span>' in page and f'<span class="mono">{revision}</span>' in page, path
