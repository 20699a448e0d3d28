"""The desk console in a real Chromium against a day the robot worked on the sandbox (issue 16):
a viewer reads, an operator releases and records an office shipment through the CLI's own code
paths, logins lock after wrong passwords, forms need their CSRF token, no page shows a secret, and
the Waiting page shows a newly held order while the robot runs, without a reload, and the Claims
page shows claims and money while an operator records a case id as `kuroko claim` does. Screenshots of
every page in both languages go to test-results/screens/console-*.png."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Sandbox, screenshot_path
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from robot import make_robot, primary_ticket

from kuroko.errors import ConfigurationError
from kuroko.ledger import (
    Claim,
    ClaimStatus,
    ItemState,
    Ledger,
    WorkItem,
    get_claim,
    open_claim,
    record_claim_case,
    update_claim,
)
from kuroko.ops.console.app import serve
from kuroko.ops.console.users import add_user, remove_user
from kuroko.settings import get_settings, reload_settings, secret_values

DATA_SIM = "SIM-DATA-30D-20GB"
VOICE_SIM = "SIM-VOICE-30D"  # FBA has none in the 'stocked' world: an office shipment
ESIM = "ESIM-DATA-30D-20GB"
CONSOLE_KEY = "console-signing-key-never-shown-0123456789"
PASSWORDS = {"viki": "viewer-pass-1", "olga": "operator-pass-1", "cleo": "claims-viewer-1", "omar": "claims-operator-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kuroko(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, env=os.environ.copy(), timeout=timeout)


@dataclass
class Desk:
    url: str
    data_dir: Path
    sandbox: Sandbox
    pages: list[tuple[str, str]]
    """(what, HTML) of every page seen, for the secret grep."""


@pytest.fixture(scope="module")
def desk(sandbox_process: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """One console for the module (`kuroko console` on a free port) over one ledger the robot fills
    on the sandbox, with small limits (one attempt, short timeouts), a viewer added with `kuroko
    users add` (password from standard input) and an operator."""
    sandbox_process.reset()
    data_dir = tmp_path_factory.mktemp("console") / "data"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**sandbox_process.robot_env(), "KUROKO_DATA_DIR": str(data_dir),
                            "KUROKO_MAX_ATTEMPTS": "1", "KUROKO_NAVIGATION_TIMEOUT_MS": "4000",
                            "KUROKO_ELEMENT_TIMEOUT_MS": "1500", "KUROKO_CONSOLE_SECRET_KEY": CONSOLE_KEY,
                            "KUROKO_CONSOLE_REFRESH_SECONDS": "1"}.items():
            env.setenv(name, value)
        reload_settings()
        added = kuroko("users", "add", "viki", "--role", "viewer", stdin=PASSWORDS["viki"] + "\n")
        assert added.returncode == 0, added.stderr
        ledger = Ledger(get_settings().ledger_database_url())
        add_user(ledger, "olga", "operator", PASSWORDS["olga"])  # what `kuroko users add` does
        ledger.close()
        with pytest.raises(ConfigurationError, match="KUROKO_CONSOLE_ALLOW_REMOTE"):
            serve("0.0.0.0", free_port())

        port = free_port()
        log_path = data_dir.parent / "console.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed below
        process = subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "console", "--port", str(port)],
                                   cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        try:
            yield Desk(url, data_dir, sandbox_process, [])
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    reload_settings()


@pytest.fixture(scope="module")
def browser(browser_type_launch_args: dict[str, object]) -> Iterator[Browser]:
    """This module's own Chromium, stopped with the module. (pytest-playwright's ``browser`` lives for
    the whole session, and a sync Playwright left running in the main thread keeps every later
    in-process robot from starting its own: "Sync API inside the asyncio loop".)"""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**browser_type_launch_args)  # type: ignore[arg-type]
        try:
            yield launched
        finally:
            launched.close()


def log_in(browser: Browser, desk: Desk, name: str, *, locale: str = "ja-JP") -> tuple[BrowserContext, Page]:
    context = browser.new_context(locale=locale, timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(desk.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("form.login button")
    expect(page.locator("header .who")).to_contain_text(name)
    return context, page


def seen(desk: Desk, page: Page, what: str, *, shot: str | None = None) -> str:
    """Keep the page's HTML for the secret grep (and a full-page screenshot)."""
    page.wait_for_load_state("networkidle")
    html = page.content()
    desk.pages.append((what, html))
    if shot:
        page.screenshot(path=str(screenshot_path(shot)), full_page=True)
    return html


def both_languages(desk: Desk, page: Page, name: str) -> None:
    """The page in Japanese and English (the switch in the header), a screenshot of each."""
    page.click("header a[lang=ja]")
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    seen(desk, page, f"{name} ja", shot=f"console-{name}-ja")
    page.click("header a[lang=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    seen(desk, page, f"{name} en", shot=f"console-{name}-en")


class RobotThread:
    """The robot (tests/robot.py) in a thread of its own: pytest-playwright's browser runs Playwright's
    sync API in the test's thread, and the robot's own Playwright cannot share that thread."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self._made = make_robot(sandbox)
        self.robot = self.pool.submit(self._made.__enter__).result()

    def run_pass(self) -> None:
        self.pool.submit(self.robot.run_pass).result()

    def close(self) -> None:
        self.pool.submit(self._made.__exit__, None, None, None).result()
        self.pool.shutdown()


def card(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f"article.card[data-key='{key}']")


def test_the_waiting_page_shows_a_newly_held_order_without_a_reload(desk: Desk, browser: Browser) -> None:
    sandbox = desk.sandbox
    context, page = log_in(browser, desk, "viki")
    page.goto(desk.url + "/waiting")
    expect(page.locator("#live")).to_be_visible()
    page.evaluate("window.__notReloaded = 42")
    esim = sandbox.place_order([ESIM])["order_number"]
    sandbox.advance(minutes=31)
    robot = subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "run", "--once"], cwd=ROOT,
                             env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        expect(card(page, esim)).to_be_visible(timeout=120_000)
    finally:
        out, _ = robot.communicate(timeout=180)
    assert robot.returncode == 0, out
    assert page.evaluate("window.__notReloaded") == 42, "the page was not reloaded"
    expect(card(page, esim).locator(".reason")).to_contain_text("eSIM")
    page.goto(desk.url + "/")
    ledger = Ledger(get_settings().ledger_database_url())
    held = len(ledger.items(ItemState.HELD))
    assert ledger.find_item(esim) is not None
    ledger.close()
    expect(page.locator("tr[data-procedure=rakuten_sim_order] td[data-state=held]")).to_have_text(str(held))
    context.close()


def test_a_seeded_day_read_by_a_viewer_and_acted_on_by_an_operator(desk: Desk, browser: Browser) -> None:
    sandbox = desk.sandbox
    # --- the day: an office shipment, an eSIM order held, and an order held by a failing RMS page
    office = sandbox.place_order([VOICE_SIM])["order_number"]
    esim = sandbox.place_order([ESIM])["order_number"]
    sandbox.advance(minutes=31)
    passes = RobotThread(sandbox)
    ledger = Ledger(get_settings().ledger_database_url())

    def order(number: str) -> WorkItem:
        found = ledger.find_item(number)
        assert found is not None
        return found

    try:
        passes.run_pass()
        broken = sandbox.place_order([DATA_SIM])["order_number"]
        sandbox.advance(minutes=31)
        sandbox.fault("rms", hide_elements=["confirm_button"])
        passes.run_pass()
        sandbox.clear_faults()
        assert order(esim).state == "held" and order(broken).state == "held"
        assert order(office).facts.get("shipment") == "office"
        broken_id = order(broken).id
        # A secret that found its way into the ledger is still never shown.
        secret = secret_values()[0]
        ledger.update_item(order(esim).id, order(esim).updated_at,
                                 facts={"note_from_a_person": f"the password is {secret}"})

        # --- 1. a viewer: counts, chart, the held order and its screenshot; no buttons; a forged POST refused
        context, page = log_in(browser, desk, "viki")
        counts = page.locator("tr[data-procedure=rakuten_sim_order]")
        held_now, every = len(ledger.items(ItemState.HELD)), len(ledger.items())
        assert held_now >= 2
        expect(counts.locator("td[data-state=held]")).to_have_text(str(held_now))
        expect(counts.locator("td[data-state=total]")).to_have_text(str(every))
        taken_in = page.locator("svg.chart rect.bar[data-series=taken_in]").evaluate_all(
            "bars => bars.map(b => Number(b.dataset.count))")
        assert len(taken_in) == 24 and sum(taken_in) == every, "every order taken in today, by the hour"
        handed_over = page.locator("svg.chart rect.bar[data-series=handed_over]").evaluate_all(
            "bars => bars.map(b => Number(b.dataset.count))")
        assert sum(handed_over) == held_now
        assert page.locator("table.passes tr").count() >= 3, "the header and at least two passes"
        expect(page.locator("table.jobs")).to_contain_text("rakuten-sim-orders")
        both_languages(desk, page, "today")

        page.click("header a[href='/waiting']")
        held = card(page, broken)
        expect(held).to_be_visible()
        expect(held.locator(".reason")).to_contain_text("confirm_order failed")
        expect(held.locator(".needed")).not_to_be_empty()
        expect(held.locator("a.ticket")).to_have_attribute("href", re.compile(r"/agent/tickets/\d+$"))
        shot = held.locator("img.shot").first
        expect(shot).to_be_visible()
        assert shot.evaluate("img => img.complete && img.naturalWidth > 100"), "the screenshot is shown inline"
        # No trace by default: the failed page's HTML and the pages the order loaded, to download.
        expect(held.locator(".trace a", has_text="-rakuten.html").first).to_be_visible()
        expect(held.locator(".trace a", has_text="-pages.txt").first).to_be_visible()
        expect(card(page, office)).to_be_visible()
        assert page.locator("form.release, form.command, button.act").count() == 0, "no buttons for a viewer"
        both_languages(desk, page, "waiting")

        held_link = page.locator(f"a[href='/items/{broken_id}']").first
        held_link.click()
        expect(page.locator("table.timeline")).to_contain_text("RMS")
        expect(page.locator("img.shot").first).to_be_visible()
        both_languages(desk, page, "item")
        page.goto(desk.url + f"/items/{order(esim).id}")
        assert "[REDACTED]" in seen(desk, page, "item with a secret in its facts")

        token = page.locator("header form input[name=csrf]").get_attribute("value")
        forged = context.request.post(f"{desk.url}/items/{broken_id}/release", form={"csrf": token or ""})
        assert forged.status == 403
        assert order(broken).state == "held"
        context.close()

        # --- 2. an operator releases the held order; the next pass takes it on; the audit says who
        context, page = log_in(browser, desk, "olga", locale="en-US")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.goto(desk.url + "/waiting")
        seen(desk, page, "waiting as operator", shot="console-waiting-operator-en")
        card(page, broken).locator("form.release button").click()
        expect(page.locator(".flash")).to_contain_text(f"Released {broken}")
        released = [e for e in ledger.audit_trail(broken_id) if e.action == "released"]
        assert [e.actor for e in released] == ["olga (console)"]
        assert get_settings().hold_tag not in primary_ticket(sandbox, broken)["tags"], "the hold tag is removed too"

        # ... and records the office shipment, which completes the order as `kuroko ship` does
        form = card(page, office).locator("form.command-ship")
        form.locator("select[name=carrier]").select_option("日本郵便")
        form.locator("input[name=tracking]").fill("１２３４−５６７８−９０１２")
        seen(desk, page, "ship form", shot="console-ship-form-en")
        form.locator("button").click()
        expect(page.locator(".flash")).to_contain_text("tracking 1234-5678-9012")
        shipped = [e for e in ledger.audit_trail(order(office).id) if e.action == "office_shipped"]
        assert [e.actor for e in shipped] == ["olga (console)"]
        passes.run_pass()  # the released order is taken on; the office shipment's mail goes out
        after = order(broken)
        assert after.state == "active" and after.step not in ("confirm_order", "verify_physical_sim")
        assert sandbox.order(broken)["confirm_clicks"] == 1
        world = sandbox.order(office)
        mails = [m for m in world["mails"] if m["template"].startswith("発送メール")]
        assert len(mails) == 1 and mails[0]["fields"]["tracking_number"] == "1234-5678-9012"
        assert world["shipping"]["company"] == "日本郵便"
        sandbox.advance(days=1)
        passes.run_pass()
        assert order(office).state == "done"
        assert primary_ticket(sandbox, office)["status"] == "solved"

        # --- search by order number, ticket number, tracking number
        page.goto(desk.url + "/search?q=1234-5678-9012")
        expect(page).to_have_url(re.compile(rf"/items/{order(office).id}$"))
        page.goto(desk.url + f"/search?q={order(esim).ticket_id}")
        expect(page).to_have_url(re.compile(rf"/items/{order(esim).id}$"))
        page.goto(desk.url + "/search?q=" + broken)
        expect(page).to_have_url(re.compile(rf"/items/{broken_id}$"))
        page.goto(desk.url + "/search?q=no-such-thing")
        expect(page.locator("main")).to_contain_text("no-such-thing")
        page.goto(desk.url + "/search?q=" + office[:6])
        both_languages(desk, page, "search")
        page.goto(desk.url + "/")
        seen(desk, page, "today at the end", shot="console-today-end-en")
        for path in ("/fragments/today", "/fragments/waiting"):
            desk.pages.append((path, context.request.get(desk.url + path).text()))
        context.close()
    finally:
        passes.close()
        ledger.close()

    # --- the report: the same templates, one file, chart and screenshots inline
    written = kuroko("report", "-o", str(desk.data_dir / "report.html"))
    assert written.returncode == 0, written.stderr
    report = (desk.data_dir / "report.html").read_text(encoding="utf-8")
    desk.pages.append(("report", report))
    assert "<svg" in report and 'class="chart"' in report and "data:image/png;base64," in report
    assert "<script" not in report and "<form" not in report

    # --- 3. no configured secret on any page
    from kuroko.ops.console.settings import console_settings

    console_settings()
    secrets = [*secret_values(), CONSOLE_KEY, *PASSWORDS.values()]
    assert len(desk.pages) >= 12
    for what, html in desk.pages:
        for secret in secrets:
            assert secret not in html, f"a secret on {what}"


def test_wrong_passwords_lock_the_login_and_forms_need_their_csrf_token(desk: Desk, browser: Browser) -> None:
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    page.goto(desk.url + "/login")
    both_languages(desk, page, "login")
    for _ in range(5):
        page.fill("input[name=name]", "olga")
        page.fill("input[name=password]", "not-the-password")
        page.click("form.login button")
    expect(page.locator(".flash.error")).to_contain_text("locked")
    page.fill("input[name=name]", "olga")
    page.fill("input[name=password]", PASSWORDS["olga"])
    page.click("form.login button")
    expect(page.locator(".flash.error")).to_contain_text("locked")
    seen(desk, page, "locked", shot="console-login-locked-en")
    listed = kuroko("users", "list").stdout
    assert re.search(r"olga.*operator.*\d{4}-\d\d-\d\d", listed), "users list shows the lock"
    assert re.search(r"viki.*viewer", listed) and PASSWORDS["olga"] not in listed
    context.close()

    with httpx.Client(base_url=desk.url) as client:
        # No token, or another session's token: refused, logged in or not.
        form = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token
        assert client.post("/login", data={"name": "viki", "password": PASSWORDS["viki"]}).status_code == 403
        assert client.post("/login", data={"name": "viki", "password": PASSWORDS["viki"],
                                           "csrf": "forged"}).status_code == 403
        logged = client.post("/login", data={"name": "viki", "password": PASSWORDS["viki"], "csrf": token.group(1)})
        assert logged.status_code == 303
        cookie = client.cookies.get("kuroko_session")
        assert cookie
        assert client.post("/logout", data={}).status_code == 403
        assert client.get("/").status_code == 200
        ledger = Ledger(get_settings().ledger_database_url())
        remove_user(ledger, "viki")  # what `kuroko users remove viki` does: the session ends at once
        ledger.close()
        assert client.get("/").status_code == 303
    with httpx.Client(base_url=desk.url) as raw:
        headers = httpx.get(desk.url + "/login").headers.get_list("set-cookie")
        assert any("HttpOnly" in h and "SameSite=strict" in h.replace("Strict", "strict") for h in headers)
        assert raw.get("/").status_code == 303, "not logged in: to the login page"
        assert raw.get("/fragments/waiting").status_code == 401


def test_the_claims_page_and_a_case_id_recorded_by_an_operator(desk: Desk, browser: Browser) -> None:
    """Claims as the after-sales and claims procedures leave them in the ledger: a viewer reads the
    Claims page (statuses, what each waits for in `kuroko claims`'s words, money totals) with no form;
    an operator records a New claim's case id on its held MCF parcel through `kuroko claim`'s code path."""
    from bots.amazon_claims import waits_for

    ledger = Ledger(get_settings().ledger_database_url())
    add_user(ledger, "cleo", "viewer", PASSWORDS["cleo"])
    add_user(ledger, "omar", "operator", PASSWORDS["omar"])
    now = desk.sandbox.now()

    def parcel(mcf_id: str, *, held: bool) -> WorkItem:
        return ledger.add_item(procedure="mcf_aftercare", key=mcf_id, ticket_id=None, step="follow", due=now,
                               now=now, facts={"order_number": "381234-20261201-" + mcf_id[1:9]},
                               state=ItemState.HELD if held else ItemState.DONE,
                               hold_code="claim" if held else None,
                               hold_reason="Lost parcel: claim prepared; file it in Seller Central" if held else None)

    def claim(item: WorkItem, kind: str = "lost") -> Claim:
        made, created = open_claim(ledger, kind=kind, item_id=item.id, mcf_order_id=item.key, package_number=1,
                                   text=f"{kind} MCF parcel {item.key}", now=now)
        assert created
        ledger.update_item(item.id, now, facts={"claims": {f"{kind}-1": made.id}})
        return made

    lost_parcel, paid_parcel, asked_parcel = (parcel(f"R{n:08d}-MCF1", held=n == 1) for n in (1, 2, 3))
    lost = claim(lost_parcel)
    paid = claim(paid_parcel, "damaged")
    record_claim_case(ledger, paid.id, "10000000001", now=now)
    update_claim(ledger, paid.id, status=ClaimStatus.REIMBURSED.value, amount_claimed=Decimal(1980),
                 amount_paid=Decimal(1980), currency="JPY", paid_at=now)
    asked = claim(asked_parcel)
    record_claim_case(ledger, asked.id, "10000000002", now=now)
    asked = update_claim(ledger, asked.id, status=ClaimStatus.MORE_INFO.value, amount_claimed=Decimal(3000),
                         currency="JPY", more_info_asked_at=now, status_since=now)
    try:
        # --- a viewer: the open claims, what each waits for, the totals; no form; a forged POST refused
        context, page = log_in(browser, desk, "cleo", locale="en-US")
        page.click("header a[href='/claims']")
        rows = page.locator("table.claims tr.claim")
        expect(rows).to_have_count(2)
        for made, status in ((lost, "New"), (asked, "MoreInfo")):
            row = page.locator(f"tr[data-claim='{made.id}']")
            expect(row).to_have_attribute("data-status", status)
            expect(row.locator(".waits")).to_have_text(waits_for(made)[0])
            expect(row.locator("a.item")).to_have_attribute("href", f"/items/{made.item_id}")
        expect(page.locator(f"tr[data-claim='{asked.id}'] .case")).to_have_text("10000000002")
        totals = page.locator("table.claim-totals tr[data-currency=JPY]")
        expect(totals.locator(".claimed")).to_have_text("¥4,980")
        expect(totals.locator(".paid")).to_have_text("¥1,980")
        assert page.locator("form.command, button.act").count() == 0
        page.click("p.filter a")
        expect(rows).to_have_count(3)
        expect(page.locator(f"tr[data-claim='{paid.id}']")).to_have_attribute("data-status", "Reimbursed")
        both_languages(desk, page, "claims")
        page.goto(desk.url + f"/items/{lost_parcel.id}")
        expect(page.locator("dd.reason")).to_contain_text("claim prepared")
        assert page.locator("form.command-claim").count() == 0, "no form for a viewer"
        token = page.locator("header form input[name=csrf]").get_attribute("value")
        forged = context.request.post(f"{desk.url}/items/{lost_parcel.id}/commands/claim",
                                      form={"csrf": token or "", "claim_id": str(lost.id), "case_id": "12345678901"})
        assert forged.status == 403
        context.close()

        # --- an operator records the case id on the held parcel: Filed, with the amount; audited by name
        context, page = log_in(browser, desk, "omar", locale="en-US")
        page.goto(desk.url + f"/items/{lost_parcel.id}")
        form = page.locator("form.command-claim")
        expect(form.locator("select[name=claim_id] option")).to_have_text([str(lost.id)])
        form.locator("input[name=case_id]").fill("12345678901")
        form.locator("input[name=amount]").fill("2,500")
        seen(desk, page, "claim form", shot="console-claim-form-en")
        form.locator("button").click()
        expect(page.locator(".flash")).to_contain_text(f"claim {lost.id} (lost, MCF order {lost.mcf_order_id}) "
                                                       "filed as case 12345678901")
        filed = get_claim(ledger, lost.id)
        assert filed is not None and filed.status == "Filed" and filed.amount_claimed == Decimal(2500)
        assert [e.actor for e in ledger.audit_trail(lost_parcel.id) if e.action == "claim_filed"] == ["omar (console)"]
        # Only this item's New claims: another item's claim is refused, and nothing is left to record here.
        token = page.locator("header form input[name=csrf]").get_attribute("value")
        context.request.post(f"{desk.url}/items/{lost_parcel.id}/commands/claim",
                             form={"csrf": token or "", "claim_id": str(asked.id), "case_id": "12345678909"})
        assert (get_claim(ledger, asked.id) or asked).case_id == "10000000002"
        page.goto(desk.url + f"/items/{lost_parcel.id}")
        expect(page.locator("table.timeline")).to_contain_text("omar (console)")
        expect(page.locator("form.command-claim")).to_have_count(0)
        page.goto(desk.url + "/claims")
        row = page.locator(f"tr[data-claim='{lost.id}']")
        expect(row).to_have_attribute("data-status", "Filed")
        expect(row.locator(".case")).to_have_text("12345678901")
        expect(page.locator("table.claim-totals tr[data-currency=JPY] .claimed")).to_have_text("¥7,480")
        seen(desk, page, "claims after filing", shot="console-claims-filed-en")
        context.close()
    finally:
        ledger.close()
