"""The auditor pages (/audit/): behind an `audit` key, readable, in business words, escaped, never a 500."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sqlalchemy import text

from service.core.api_keys import create_key
from tests.audit_html import PAGES, basic, bearer, matrix_cells, page, parse
from tests.support import TEST_KEY

DENIED_SUMMARY = (
    "u_client may not view_subscription account acc_b: u_client is admin of acc_b, "
    "but acc_b restricts subscription management to its payment manager"
)
ASK = "/audit/explain?actor={actor}&action={action}&type=Account&id=acc_b"


@pytest.fixture
def story(app, api):
    """The set-up of SPEC.md: sign-up, the partner invited as payment manager, the subscription restricted."""
    api.create_account("acc_b", "u_client", name="Entreprise B")
    assert api.invite("acc_b", "u_partner", "payment_manager", acting_user="u_client").status == 201
    restricted = api.settings(
        "acc_b", "u_partner",
        restrict_subscription_to_payment_manager=True, auto_add_subscription_invoices_to_purchases=False,
    )
    assert restricted.status == 200, restricted
    api.create_account("acc_c", "u_other")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


# -- who may read them ----------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_without_a_valid_key_a_401_asks_the_browser_to_sign_in(client, path):
    for headers in ({}, basic("not-the-key"), bearer("not-the-key"), {"Authorization": "Basic !!not base64"},
                    basic(""), {"Authorization": "Basic " + "bm8gY29sb24="}):  # "no colon"
        response = page(client, path, 401, headers)
        assert response.headers["WWW-Authenticate"] == 'Basic realm="authz audit"'
        assert "Sign in" in response.get_data(as_text=True)


def test_a_key_without_the_audit_scope_gets_a_403(app, client):
    _id, checker = create_key(app.extensions["authz"].db, "checker", ["check", "write"])
    for headers in (basic(checker), bearer(checker)):
        response = page(client, "/audit/", 403, headers)
        assert "audit" in parse(response.get_data(as_text=True)).find(id="error").text


@pytest.mark.parametrize("path", PAGES)
def test_an_audit_key_reads_every_page_with_basic_or_bearer(story, client, path):
    _id, auditor = create_key(story.extensions["authz"].db, "auditor", ["audit"])
    for headers in (basic(TEST_KEY), bearer(TEST_KEY), basic(auditor, "anyone"), bearer(auditor)):
        response = page(client, path, 200, headers)
        assert response.headers["Cache-Control"] == "no-store"
        assert "script-src" not in response.headers["Content-Security-Policy"]  # no script runs on these pages


def test_the_pages_are_not_part_of_the_json_api(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not [path for path in paths if path.startswith("/audit")]


# -- the pages --------------------------------------------------------------------


def test_the_overview_names_the_policy_the_revision_the_log_status_and_the_accounts(story, api, client):
    html = page(client, "/audit/").get_data(as_text=True)
    document = parse(html)
    assert document.find(id="policy-sha").text == api.get("/v1/policy").json["sha256"]
    assert document.find(id="revision").text == str(api.revision())
    assert document.find(id="verification").attributes["data-status"] == "intact"
    links = {a.attributes["href"] for a in document.find("table", id="accounts").find_all("a")}
    assert links == {"/audit/changes?account=acc_b", "/audit/changes?account=acc_c"}
    for target in ("/audit/policy", "/audit/matrix", "/audit/changes", "/audit/explain"):
        assert f'href="{target}"' in html


def test_the_policy_page_numbers_every_line_and_sets_comments_apart(client, app):
    policy = app.extensions["authz"].policy()
    document = parse(page(client, "/audit/policy").get_data(as_text=True))
    assert document.find(id="policy-sha").text == policy.sha256
    lines = policy.text.splitlines()
    shown = document.find("ol", id="policy-text").find_all("li")
    assert [item.attributes["id"] for item in shown] == [f"L{n}" for n in range(1, len(lines) + 1)]
    for item, line in zip(shown, lines, strict=True):
        assert item.find("code").text == " ".join(line.split())
        expected = "blank" if not line.strip() else "comment" if line.strip().startswith("#") else "rule"
        assert item.attributes["class"] == expected


def test_the_matrix_page_shows_who_is_granted_each_action(client):
    document = parse(page(client, "/audit/matrix").get_data(as_text=True))
    # Columns: not restricted (invoices added, kept out), then restricted (added, kept out).
    assert matrix_cells(document, "Account", "view_subscription") == [
        "admin payment_manager", "admin payment_manager", "payment_manager", "payment_manager",
    ]
    assert matrix_cells(document, "Account", "view_workspace") == ["admin collaborator reader"] * 4
    assert matrix_cells(document, "SubscriptionInvoice", "view")[2] == "admin collaborator reader payment_manager"
    assert matrix_cells(document, "SubscriptionInvoice", "view")[3] == "payment_manager"
    assert "How to read it" in document.text


def test_the_change_log_of_an_account_reads_in_business_words(story, client):
    document = parse(page(client, "/audit/changes?account=acc_b").get_data(as_text=True))
    assert document.find(id="verification").attributes["data-status"] == "intact"
    assert "intact" in document.find(id="verification").text
    rows = document.find("table", id="changes").find("tbody").find_all("tr")
    revisions = [int(row.attributes["data-revision"]) for row in rows]
    assert revisions == sorted(revisions) and len(revisions) == 3
    said = [row.find("td", class_="what").text for row in rows]
    assert said == [
        "system signed up acc_b with admin u_client",
        "u_client invited u_partner as payment_manager",
        "u_partner restricted subscription management to the payment manager "
        "and stopped adding subscription invoices to acc_b's purchases",
    ]
    assert [row.find("span", class_="mono who-asked").text for row in rows] == ["system", "u_client", "u_partner"]
    assert [row.find("span", class_="mono api-key").text for row in rows] == ["preshared"] * 3
    assert "restrict subscription to payment manager: no → yes" in rows[2].text


def test_the_whole_log_shows_policy_loads_by_their_sha_only(story, client, api):
    html = page(client, "/audit/changes").get_data(as_text=True)
    sha = api.get("/v1/policy").json["sha256"]
    assert f"system put policy {sha[:12]} in force" in html and sha in html
    assert "Anything this file does not grant is denied" not in html  # the policy text is not shown
    assert 'href="/audit/changes?account=acc_c"' in html


def test_the_change_log_pages_through_entries_with_after(story, client):
    document = parse(page(client, "/audit/changes?after=2").get_data(as_text=True))
    revisions = [int(row.attributes["data-revision"]) for row in document.find("tbody").find_all("tr")]
    assert revisions and min(revisions) == 3


def test_a_tampered_log_is_shown_with_the_revision_and_the_problem(story, client):
    db = story.extensions["authz"].db
    with db.engine.begin() as connection:
        connection.execute(text(
            """UPDATE changes SET after = '{"role":"admin"}' WHERE kind = 'member.invite' AND user_id = 'u_partner'"""
        ))
        edited = connection.execute(text(
            "SELECT revision FROM changes WHERE kind = 'member.invite' AND user_id = 'u_partner'"
        )).scalar_one()
    for path in ("/audit/changes?account=acc_b", "/audit/"):
        status = parse(page(client, path).get_data(as_text=True)).find(id="verification")
        assert status.attributes["data-status"] == "tampered"
        assert status.attributes["data-revision"] == str(edited)
        assert f"tampered at revision {edited}" in status.text and "was edited" in status.text
    rows = parse(page(client, "/audit/changes?account=acc_b").get_data(as_text=True)).find("tbody").find_all("tr")
    assert [row.attributes.get("class") for row in rows] == [None, "tampered", "tampered"]


def test_a_fact_changed_behind_the_logs_back_is_shown(story, client):
    with story.extensions["authz"].db.engine.begin() as connection:
        connection.execute(text("UPDATE memberships SET role = 'admin' WHERE user_id = 'u_partner'"))
    status = parse(page(client, "/audit/").get_data(as_text=True)).find(id="verification")
    assert status.attributes["data-status"] == "tampered"
    assert status.find("ul", id="drift").text == (
        "membership ('acc_b', 'u_partner'): the table says admin, the log says payment_manager"
    )


def test_explain_renders_a_denied_decision_with_its_rules(story, client, app):
    html = page(client, ASK.format(actor="u_client", action="view_subscription")).get_data(as_text=True)
    document = parse(html)
    assert document.find(id="verdict").text == "DENIED"
    assert document.find(id="summary").text == DENIED_SUMMARY
    assert "u_client is admin of acc_b" in document.find(id="facts").text
    assert "acc_b did not restrict" not in html and "It would be allowed if" in html
    assert "acc_b does not restrict subscription management to its payment manager" in document.find(id="turning").text
    rules = document.find("table", id="rules").find("tbody").find_all("tr")
    policy_lines = app.extensions["authz"].policy().text.splitlines()
    link = rules[0].find("a", class_="line").attributes["href"]
    line = int(re.fullmatch(r"/audit/policy#L(\d+)", link).group(1))
    assert policy_lines[line - 1].strip() == '"view_subscription" if "subscription_manager";'
    assert "does not hold" in rules[0].text


def test_explain_renders_an_allowed_decision(story, client):
    document = parse(page(client, ASK.format(actor="u_partner", action="manage_subscription")).get_data(as_text=True))
    assert document.find(id="verdict").text == "ALLOWED"
    assert document.find(id="summary").text.startswith("u_partner may manage_subscription account acc_b because")
    assert "✓ holds" in document.find("table", id="rules").text
    assert "It would be denied if" in document.text


def test_explain_as_of_a_past_revision_links_to_the_policy_then(story, client, api):
    signed_up = api.get("/v1/changes?account=acc_b").json["changes"][0]["revision"]
    path = ASK.format(actor="u_client", action="view_subscription") + f"&as_of_revision={signed_up}"
    document = parse(page(client, path).get_data(as_text=True))
    assert document.find(id="verdict").text == "ALLOWED"
    link = document.find("a", class_="line").attributes["href"]
    assert link.startswith(f"/audit/policy?as_of_revision={signed_up}#L")
    page(client, link.split("#")[0])


@pytest.mark.parametrize(
    "query, says",
    [
        ("actor=u_client&action=fly&type=Account&id=acc_b", "unknown action 'fly' for Account"),
        ("actor=u_client&action=view&type=Spaceship&id=x", "resource type: Unknown resource type 'Spaceship'"),
        ("actor=u_client&action=delete&type=PaymentMethod&id=pm_7&account=acc_b", "owner: Missing data"),
        ("action=read&type=Account&id=acc_b", "actor: Missing data"),
        ("actor=u_client&action=read&type=Account&id=acc_b&as_of_revision=soon", "as of revision: Not a valid integer"),
        ("actor=u_client&action=read&type=Account&id=acc_b&as_of_revision=99999", "ahead of the latest revision"),
        ("actor=u_client&action=read&type=Account&id=acc_b&as_of_revision=-1", "plain digits 0-9 only"),
        ("actor=u_client&action=read&type=Account&id=acc%2Fb", "id: must be 1 to 200 characters among"),
        ("actor=u%00x&action=read&type=Account&id=acc_b", "actor: must be 1 to 200 characters among"),
    ],
)
def test_explain_answers_bad_input_with_a_message_and_a_400(story, client, query, says):
    document = parse(page(client, f"/audit/explain?{query}", 400).get_data(as_text=True))
    assert says in document.find(id="error").text
    assert document.find("form").find("button").text == "Explain"  # the form is still there to correct


@pytest.mark.parametrize("path", ["/audit/changes?after=-1", "/audit/changes?after=x", "/audit/policy?as_of_revision=x",
                                  "/audit/changes?surprise=1"])
def test_bad_query_strings_give_a_400_page(client, path):
    page(client, path, 400)


def test_an_unknown_account_gives_a_404_page(client):
    assert "no account acc_nope" in page(client, "/audit/changes?account=acc_nope", 404).get_data(as_text=True)


def test_everything_user_supplied_is_escaped(app, api, client):
    api.create_account("acc_x", "u_admin", name="<script>alert('name')</script>")
    # Such ids are refused by the id grammar; the form shows what was typed back, escaped.
    for actor, shown in [("<script>alert(1)", "&lt;script&gt;alert(1)"), ("<img src=x onerror=alert(1)>",
                                                                       "&lt;img src=x onerror=alert(1)&gt;")]:
        html = page(client, f"/audit/explain?actor={quote(actor)}&action=read&type=Account&id=acc_x", 400)
        html = html.get_data(as_text=True)
        assert actor not in html
        assert shown in html and "actor: must be 1 to 200 characters among" in html
    overview = page(client, "/audit/").get_data(as_text=True)
    assert "<script>" not in overview and "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in overview
    error = page(client, "/audit/explain?actor=u&action=<b>x</b>&type=Account&id=acc_x", 400).get_data(as_text=True)
    assert "<b>x</b>" not in error and "&lt;b&gt;x&lt;/b&gt;" in error
