"""The auditor pages in a real browser (headless Chromium, driven by Playwright) against the real server.

An auditor signs in with the browser's own login prompt (the API key as the
password), reads the matrix, follows an account to its change log, fills the
explain form, and follows a rule to its line of the policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.servers import running_server
from tests.support import TEST_KEY, Api, http_transport

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DENIED_SUMMARY = (
    "u_client may not view_subscription account acc_b: u_client is admin of acc_b, "
    "but acc_b restricts subscription management to its payment manager"
)

try:
    from playwright.sync_api import sync_playwright
except ImportError as error:
    pytest.skip(f"the playwright package cannot be imported ({error}): browser tests skipped", allow_module_level=True)
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium): browser tests skipped", allow_module_level=True)


def seed_the_story(api: Api) -> None:
    """SPEC.md's set-up, through the JSON API, and a second client account of the same partner."""
    api.create_account("acc_b", "u_client", name="Entreprise B")
    assert api.invite("acc_b", "u_partner", "payment_manager", acting_user="u_client").status == 201
    restricted = api.settings(
        "acc_b", "u_partner",
        restrict_subscription_to_payment_manager=True, auto_add_subscription_invoices_to_purchases=False,
    )
    assert restricted.status == 200, restricted
    # The payment manager cannot be removed while the subscription is restricted: refused, nothing logged.
    assert api.delete("/v1/accounts/acc_b/members/u_partner?acting_user=u_client").status == 409
    api.create_account("acc_c", "u_other_client", name="Entreprise C")
    assert api.invite("acc_c", "u_partner", "payment_manager", acting_user="u_other_client").status == 201
    assert api.put("/v1/support-agents/u_support").status == 200


@pytest.fixture
def server(tmp_path):
    with running_server(f"sqlite:///{tmp_path / 'authz.sqlite3'}", workers=2) as base:
        seed_the_story(Api(http_transport(base, requests.Session())))
        yield base


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_an_auditor_reads_the_pages_in_a_browser(server, browser, tmp_path):
    anonymous = browser.new_context()
    refused = anonymous.request.get(server + "/audit/")  # what makes a browser show its login prompt
    assert refused.status == 401 and refused.headers["www-authenticate"] == 'Basic realm="authz audit"'
    anonymous.close()

    context = browser.new_context(
        http_credentials={"username": "auditor", "password": TEST_KEY}, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    # The overview: the log is intact, the accounts are listed.
    assert page.goto(server + "/audit/").status == 200
    assert page.locator("#verification").get_attribute("data-status") == "intact"
    assert page.locator("#accounts tbody tr").count() == 2

    # The permission matrix, reached from the header: restricted columns leave the subscription page to the
    # payment manager alone.
    nav = page.get_by_role("navigation", name="Auditor pages")
    nav.get_by_role("link", name="Permission matrix").click()
    page.wait_for_url("**/audit/matrix")
    cells = page.locator("#matrix-Account tr[data-action='view_subscription'] td")
    assert cells.count() == 4
    grantees = [cells.nth(i).locator(".who").all_inner_texts() for i in range(4)]
    assert grantees == [["admin", "payment_manager"], ["admin", "payment_manager"], ["payment_manager"], ["payment_manager"]]
    workspace = page.locator("#matrix-Account tr[data-action='view_workspace'] td").first.locator(".who")
    assert "payment_manager" not in workspace.all_inner_texts()

    # The change log of acc_b, reached from the overview's list of accounts.
    page.get_by_role("link", name="authz audit").click()
    page.get_by_role("link", name="changes of acc_b").click()
    page.wait_for_url("**/audit/changes?account=acc_b")
    assert "intact" in page.locator("#verification").inner_text()
    revisions = [int(r) for r in page.locator("#changes tbody tr").evaluate_all("rows => rows.map(r => r.dataset.revision)")]
    assert revisions == sorted(revisions)
    assert page.locator("#changes td.what").all_inner_texts() == [
        "system signed up acc_b with admin u_client",
        "u_client invited u_partner as payment_manager",
        "u_partner restricted subscription management to the payment manager "
        "and stopped adding subscription invoices to acc_b's purchases",
    ]

    # The explain form, filled and submitted by clicking.
    nav.get_by_role("link", name="Explain a decision").click()
    page.get_by_label("actor (user id)").fill("u_client")
    page.get_by_label("action").fill("view_subscription")
    page.get_by_label("resource type").select_option("Account")
    page.get_by_label("id", exact=True).fill("acc_b")
    page.get_by_role("button", name="Explain").click()
    page.wait_for_selector("#verdict")
    assert page.locator("#verdict").inner_text() == "DENIED"
    assert page.locator("#summary").inner_text() == DENIED_SUMMARY
    assert page.get_by_label("actor (user id)").input_value() == "u_client"  # the form keeps what was asked
    screenshot = tmp_path / "explain.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot of the explain page: {screenshot}")

    # Its rule leads to the right line of the policy, highlighted.
    page.locator("#rules a.line").first.click()
    page.wait_for_url("**/audit/policy#L*")
    line = page.url.rsplit("#L", 1)[1]
    target = page.locator(f"#L{line}")
    assert target.locator("code").inner_text().strip() == '"view_subscription" if "subscription_manager";'
    assert page.evaluate("document.querySelector(':target').id") == f"L{line}"
    assert target.evaluate("element => getComputedStyle(element).backgroundColor") != "rgba(0, 0, 0, 0)"

    assert problems == [], problems
    context.close()
