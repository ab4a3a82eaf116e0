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
    # The page answers at once and follows the execution job (static/decided.js polls it).
    _wait_done(page)
    assert page.locator("#execution-outcome").inner_text().startswith("deployed")
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
    # No Approve control for a non-approver: the page says why instead (the server's rule).
    assert carol.locator(f"#approve-{aid}").count() == 0
    assert "not a listed approver" in carol.locator(f"#cannot-approve-{aid}").inner_text()

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


def _console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _shot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("MODELOPS_SCREENS")  # a folder to keep copies in, for a person
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    assert shot.stat().st_size > 10_000 and _non_blank(shot)
    return shot


def test_canary_approval_monitoring_deployments_and_model_pages(
    browser, served, registered, tmp_path
):
    from tests.test_monitoring_policy import _log

    live, tokens = served
    rt = registered["rt"]
    name, (v1, v2) = registered["name"], registered["versions"]
    s = rt.services
    alice = s.policy.human("alice", authenticated=True)
    first = request_promotion(registered, v1)["approval_id"]
    evidence = s.approvals.get(first).evidence_hash
    rt.dispatcher.call_or_raise(
        alice, "decide_approval", {"approval_id": first, "approve": True, "evidence_hash": evidence}
    )
    rt.run_decided(first, alice)
    canary = rt.dispatcher.call_or_raise(
        s.policy.human("dana", authenticated=True),
        "request_promotion",
        {"name": name, "version": v2, "dataset": registered["holdout"],
         "plan": {"strategy": "canary", "steps": [10, 50, 100]}},
    )["approval_id"]  # fmt: skip

    # The requester sees her request and no Approve control.
    dana = _page(browser, live)
    dana_errors = _console_errors(dana)
    _sign_in(dana, tokens["dana"])
    dana.goto(f"/console/approvals/{canary}")
    assert dana.locator(f"#approve-{canary}").count() == 0
    assert dana.locator(f"#cannot-approve-{canary}").is_visible()
    _shot(dana, tmp_path, "approval-requester")

    page = _page(browser, live)
    errors = _console_errors(page)
    _sign_in(page, tokens["alice"])
    page.goto(f"/console/approvals/{canary}")
    assert "canary 10% → 50% → 100%" in page.locator(f"#approval-{canary}").inner_text()
    assert page.locator(f"#honesty-{canary}").is_visible()
    _shot(page, tmp_path, "approval-canary")
    page.click(f"#approve-{canary}")
    _wait_done(page)
    # The job's outcome is the workflow's: the approved canary's first step is live.
    recorded = page.locator("#execution-outcome").inner_text()
    assert recorded.startswith("rolling_out"), recorded
    _shot(page, tmp_path, "decided-canary")

    # Traffic: v1 answers ordinary rows, v2 a drifted batch (every feature far off).
    row = registered["row"]
    _log(rt, name, v1, [row] * 60)
    _log(rt, name, v2, [[x * 8 + 50 for x in row]] * 60)
    rt.dispatcher.call_or_raise(alice, "check_monitoring", {"model_id": name})
    want = rt.dispatcher.call_or_raise(alice, "monitor_report", {"model_id": name})
    assert any(a["kind"] == "data_drift" for a in want["stored_alerts"])

    page.goto(f"/console/models/{name}/monitoring")
    for vr in want["report"]["versions"]:
        card = page.locator(f"#version-{vr['version']}")
        slo = vr["slo"]
        assert card.locator(".slo-requests").inner_text() == str(slo["requests"])
        assert card.locator(".slo-p99_ms").inner_text() == f"{slo['p99_ms']:.1f} ms"
        assert card.locator(".slo-error_rate").inner_text() == f"{slo['error_rate'] * 100:.2f} %"
        assert card.locator("figure.chart svg").count() >= 4
    drifted = page.locator(f"#version-{v2} .drift-summary").inner_text()
    assert "DATASET DRIFT" in drifted
    assert page.locator("#stored-alerts").inner_text().count("data_drift") >= 1
    _shot(page, tmp_path, "monitoring")

    page.goto("/console/deployments")
    dep = rt.dispatcher.call_or_raise(alice, "get_deployment", {"name": name})
    for sv in dep["serving"]:
        row_ = page.locator(f"#serving-{name}-production-{sv['version']}")
        assert row_.locator(".weight").inner_text() == f"{sv['weight']:g} %"
        assert row_.locator(".requests").inner_text() == str(sv["requests"])
        shown = "–" if sv["p99_ms"] is None else f"{sv['p99_ms']:.1f} ms"
        assert row_.locator(".p99").inner_text() == shown
    _shot(page, tmp_path, "deployments")
    page.goto(f"/console/deployments/{name}")
    rollout_rows = [h for h in dep["history"] if h["action"] == "rollout"]
    assert rollout_rows and all(h["approval_id"] == canary for h in rollout_rows)
    assert canary in page.locator("#revisions").inner_text()
    _shot(page, tmp_path, "deployment")

    page.goto(f"/console/models/{name}")
    assert "champion" in page.locator(f"#version-{v1} h2").inner_text()
    assert page.locator(f"#version-{v1} .measured").count() >= 1
    _shot(page, tmp_path, "model")
    assert errors == [] and dana_errors == []


def _wait_done(page) -> None:  # noqa: ANN001
    """Until the decided page's live view says the execution job finished."""
    import re as _re

    from playwright.sync_api import expect

    # A locator wait, not wait_for_function: the console's CSP forbids evaluating strings.
    expect(page.locator("#execution-state")).to_have_text(
        _re.compile("^(done|failed)$"), timeout=120_000
    )
    assert page.locator("#execution-state").inner_text() == "done"
