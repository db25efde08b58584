"""The decisions and access-review pages in headless Chromium against the real server: desktop, phone and A4 print."""

from __future__ import annotations

import time

import requests

from tests.support import Api, account, http_transport, user
from tests.test_audit_browser import CHROMIUM, CHROMIUM_ARGS, TEST_KEY, browser, server  # noqa: F401 - fixtures

PHONE = {"width": 390, "height": 844}


def _fits(page) -> bool:
    """Nothing wider than the screen: no sideways scrolling."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _on_a_phone_and_on_paper(page, tmp_path, name: str) -> None:
    """The page at a phone's width, fitting without sideways scrolling, then printed on A4 (left in print media)."""
    page.set_viewport_size(PHONE)
    assert _fits(page)
    page.screenshot(path=str(tmp_path / f"{name}-phone.png"), full_page=True)
    page.emulate_media(media="print")
    page.pdf(path=str(tmp_path / f"{name}-a4.pdf"), format="A4")


def test_an_auditor_reads_decisions_and_access_in_a_browser(server, browser, tmp_path):  # noqa: F811
    api = Api(http_transport(server, requests.Session()))
    assert api.post("/v1/authorize", {"actor": user("u_client"), "action": "view_subscription",
                                      "resource": account("acc_b")}).json["allowed"] is False
    assert api.post("/v1/authorize", {"actor": user("u_partner"), "action": "manage_subscription",
                                      "resource": account("acc_b")}).json["allowed"] is True
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(api.get("/v1/decisions?actor=u_client").json["decisions"]) < 2:
        time.sleep(0.1)

    context = browser.new_context(
        http_credentials={"username": "auditor", "password": TEST_KEY}, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    assert page.goto(server + "/audit/").status == 200
    page.get_by_role("navigation", name="Auditor pages").get_by_role("link", name="Decisions").click()
    page.wait_for_url("**/audit/decisions")
    page.get_by_label("user").fill("u_client")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit/decisions?actor=u_client*")
    outcomes = page.locator("#decisions td.outcome").all_inner_texts()
    # The refused removal of the payment manager (409, seeded), then the denied subscription page.
    assert outcomes == ["refused payment_manager_protected", "denied"], outcomes
    page.screenshot(path=str(tmp_path / "decisions-desktop.png"), full_page=True)

    _on_a_phone_and_on_paper(page, tmp_path, "decisions")
    assert page.locator("form.filters").is_hidden()
    page.emulate_media(media="screen")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("navigation", name="Auditor pages").get_by_role("link", name="Access review").click()
    page.get_by_label("account").fill("acc_b")
    page.get_by_role("button", name="Review").click()
    page.wait_for_url("**/audit/access-review?account=acc_b*")
    people = page.locator("#subjects tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)")
    assert people == ["u_client", "u_partner", "u_support"]
    assert "own payment methods only" in page.locator("#subjects tr[data-user='u_partner']").inner_text()
    page.screenshot(path=str(tmp_path / "access-desktop.png"), full_page=True)
    _on_a_phone_and_on_paper(page, tmp_path, "access")
    for name in ("decisions-desktop", "decisions-phone", "access-desktop", "access-phone"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")
    assert problems == [], problems
    context.close()
