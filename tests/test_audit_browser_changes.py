"""The change log page in headless Chromium: filters and pages by clicking, printed on A4, read on a phone.

Screenshots (A4 print, phone) and the printed PDF are written to $AUTHZ_SCREENSHOTS (default: the
test's temporary directory), to be looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.servers import running_server
from tests.support import TEST_KEY, Api, http_transport

# The browser fixture, and the module-level skip where playwright or chromium is missing.
from tests.test_audit_browser import browser  # noqa: F401 - a fixture

A4_WIDTH_PX = 794  # 210 mm at 96 px per inch
PHONE = {"width": 390, "height": 844}


def seed(api: Api) -> None:
    """A partner's client accounts with long ids and names, member changes and settings: 40-odd entries."""
    for number in range(8):
        account = f"acc_client_company_with_a_long_identifier_{number:02d}"
        assert api.create_account(account, f"u_admin_of_client_company_{number:02d}@example.com",
                                  name=f"Entreprise {number}").status == 201
        assert api.invite(account, "u_partner_accounting_firm", "payment_manager").status == 201
        assert api.settings(account, "u_partner_accounting_firm", restrict_subscription_to_payment_manager=True,
                            auto_add_subscription_invoices_to_purchases=False).status == 200
        assert api.invite(account, f"u_reader_{number}", "reader").status == 201
        assert api.patch(f"/v1/accounts/{account}/members/u_reader_{number}", {"role": "collaborator"}).status == 200
    assert api.put("/v1/support-agents/u_support").status == 200


@pytest.fixture
def server(tmp_path):
    with running_server(f"sqlite:///{tmp_path / 'authz.sqlite3'}", workers=2) as base:
        seed(Api(http_transport(base, requests.Session())))
        yield base


def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("AUTHZ_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_the_change_log_filters_and_pages_by_clicking(server, browser):  # noqa: F811
    context = browser.new_context(http_credentials={"username": "auditor", "password": TEST_KEY},
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    assert page.goto(server + "/audit/changes?limit=10").status == 200
    assert page.locator("#changes tbody tr").count() == 10
    page.locator("#last").click()
    page.wait_for_selector("#previous")
    newest = page.locator("#changes tbody tr").last.get_attribute("data-revision")
    assert page.locator("#next").count() == 0
    page.locator("#previous").click()
    page.wait_for_selector("#next")
    assert int(page.locator("#changes tbody tr").last.get_attribute("data-revision")) < int(newest)

    page.get_by_label("user (about or asking)").fill("u_reader_3")
    page.get_by_label("kind").select_option("member.change_role")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_selector("#changes")
    assert page.locator("#changes td.what").all_inner_texts() == ["system changed u_reader_3's role from reader to collaborator"]
    csv_link = page.locator("#csv").get_attribute("href")
    assert "user=u_reader_3" in csv_link and "format=csv" in csv_link
    exported = context.request.get(server + csv_link)
    assert exported.status == 200 and exported.text().count("\n") == 2
    assert problems == [], problems
    context.close()


def test_the_change_log_prints_on_a4_and_reads_on_a_phone(server, browser, tmp_path):  # noqa: F811
    directory = shots(tmp_path)
    credentials = {"username": "auditor", "password": TEST_KEY}

    printed = browser.new_context(http_credentials=credentials, viewport={"width": A4_WIDTH_PX, "height": 1123})
    page = printed.new_page()
    assert page.goto(server + "/audit/changes").status == 200
    page.emulate_media(media="print")
    assert page.locator("form.filters").is_hidden() and page.locator("#pager").is_hidden()
    table = page.locator("#changes")
    overflow = table.evaluate("t => t.scrollWidth - t.parentElement.clientWidth")
    assert overflow <= 0, f"the table is {overflow}px wider than the printed page"
    assert page.evaluate("document.documentElement.scrollWidth") <= A4_WIDTH_PX
    assert page.locator("#footer-head").is_visible()
    page.screenshot(path=str(directory / "changes-a4-print.png"), full_page=True)
    page.screenshot(path=str(directory / "changes-a4-print-first-page.png"))  # one A4 page's height
    pdf = directory / "changes-a4.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.stat().st_size > 10_000
    printed.close()

    phone = browser.new_context(http_credentials=credentials, viewport=PHONE, is_mobile=True, has_touch=True,
                                device_scale_factor=2)
    page = phone.new_page()
    assert page.goto(server + "/audit/changes").status == 200
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    first = page.locator("#changes tbody tr").first
    box = first.bounding_box()
    assert box["width"] <= PHONE["width"]
    label = first.locator("td.what").evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"what happened"'  # each cell of a card says what it is
    spilling = page.locator("#changes td").evaluate_all("cells => cells.filter(c => c.scrollWidth > c.clientWidth).length")
    assert spilling == 0, f"{spilling} cells spill out of their card"
    page.screenshot(path=str(directory / "changes-phone.png"), full_page=False)
    first.scroll_into_view_if_needed()
    page.screenshot(path=str(directory / "changes-phone-entries.png"), full_page=False)
    for name in ("", "matrix", "policy", "explain"):
        other = phone.new_page()
        assert other.goto(f"{server}/audit/{name}").status == 200
        assert other.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], f"/audit/{name} scrolls sideways"
        other.close()
    phone.close()
    print(f"screenshots in {directory}")
