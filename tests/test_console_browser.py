"""The approval console in a real browser: Playwright driving Debian's headless Chromium
(never ``playwright install``). An approver signs in, opens a pending promotion, approves it,
and the deployment page shows the new live version; a non-approver is refused; a form posted
without its CSRF token is refused. A screenshot of the inbox is saved under the test's tmp dir.

Skips with the reason when Chromium or Playwright is missing, unless MODELOPS_REQUIRE_BROWSER=1
(CI), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.approvals import ApprovalStatus
from tests.test_server_support import LiveServer, make_tokens, request_promotion

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def _missing(reason: str) -> None:
    if os.environ.get("MODELOPS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (MODELOPS_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[object]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _missing("Chromium is not installed (Debian: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright; never `playwright install`)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def served(registered):
    from agents.server.app import create_app

    rt = registered["rt"]
    tokens = make_tokens(rt)
    with LiveServer(create_app(rt)) as live:
        yield live, tokens


def _page(browser, live):
    context = browser.new_context(base_url=live.url)
    page = context.new_page()
    page.set_default_timeout(120_000)
    return page


def _sign_in(page, token: str) -> None:
    page.goto("/console/")
    assert "/console/login" in page.url
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_url("**/console/")


def _non_blank(png: Path) -> bool:
    from PIL import Image

    with Image.open(png) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1_000_000) or []
    return img.size[0] > 100 and len(colors) > 20


def test_approver_approves_in_the_browser_and_sees_the_new_live_version(
    browser, served, registered, tmp_path
):
    live, tokens = served
    rt = registered["rt"]
    aid = request_promotion(registered)["approval_id"]
    page = _page(browser, live)
    _sign_in(page, tokens["alice"])

    card = page.locator(f"#approval-{aid}")
    assert card.is_visible()
    shot = tmp_path / "inbox.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and _non_blank(shot)
    assert aid in card.inner_text() and "Candidate vs champion" in card.inner_text()
    evidence_hash = rt.services.approvals.get(aid).evidence_hash
    assert evidence_hash in card.inner_text()
    assert card.locator("img").count() >= 1  # the QA report's plots
    assert page.locator("#request-id").inner_text().startswith("req-")

    page.click(f"#approval-{aid} h2 a")
    page.wait_for_url(f"**/console/approvals/{aid}")
    bound = page.locator(f"#approval-{aid} form.approve input[name=evidence_hash]")
    assert bound.get_attribute("value") == evidence_hash
    page.click(f"#approve-{aid}")
    assert f"Approved {aid} as alice" in page.locator("#decision").inner_text()
    assert page.locator("#outcome").inner_text().startswith("deployed")
    page.click("#to-deployment")
    page.wait_for_url("**/console/deployments/breast-cancer-classifier")
    assert "v1 100" in page.locator("#live").inner_text()
    req = rt.services.approvals.get(aid)
    assert req.status == ApprovalStatus.EXECUTED and req.decided_by == "alice"


def test_non_approver_is_refused_and_a_post_without_csrf_is_refused(browser, served, registered):
    live, tokens = served
    rt = registered["rt"]
    aid = request_promotion(registered)["approval_id"]

    carol = _page(browser, live)
    _sign_in(carol, tokens["carol"])
    carol.goto(f"/console/approvals/{aid}")
    carol.click(f"#approve-{aid}")
    assert "not a listed approver" in carol.locator("#error-message").inner_text()

    bob = _page(browser, live)
    _sign_in(bob, tokens["bob"])
    bob.goto(f"/console/approvals/{aid}")
    # The page's own forms carry the token; drop it from one and submit, as a forged post would.
    bob.evaluate(
        f"document.querySelector('#approval-{aid} form.approve input[name=csrf]').remove()"
    )
    bob.click(f"#approve-{aid}")
    assert "CSRF token is missing or wrong" in bob.locator("#error-message").inner_text()

    req = rt.services.approvals.get(aid)
    assert req.status == ApprovalStatus.PENDING and req.decided_by is None
    assert rt.services.deployments.count_revisions("breast-cancer-classifier") == 0
