"""Signing in to RMS as the real one asks: R-Login, then the 楽天会員 login, then the お知らせ — and
stopping at once, without a retry, on the pages only a person can pass. Real Chromium against the
sandbox RMS; the sandbox counts every submission of credentials (``GET /admin/rms/logins``)."""

from __future__ import annotations

from typing import Any

import pytest
import test_rms
from conftest import Sandbox, screenshot_path
from test_rms import SIM, SITE, Rms, make_rms

from kuroko.browser import Browser
from kuroko.errors import ConfigurationError, LoginBlocked, LoginRefused, PageChanged

# test_rms.py's fixtures: one Chromium for the module, a fresh RMS context and robot per test.
shared_browser = test_rms.shared_browser
rms_browser = test_rms.rms_browser
rms = test_rms.rms


def logins(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.get("/admin/rms/logins")


def knobs(sandbox: Sandbox, **values: Any) -> dict[str, Any]:
    return sandbox.post("/admin/rms/login", values)


def shoot(robot: Rms, name: str) -> None:
    robot.site.page.screenshot(path=str(screenshot_path(f"rms-login-{name}")), full_page=True)


# --- the way in -----------------------------------------------------------------------------
def test_both_stages_and_the_notices_lead_to_the_order_page(rms: Rms, sandbox: Sandbox) -> None:
    knobs(sandbox, notices=3)
    number = sandbox.place_order([SIM])["order_number"]
    view = rms.page.open(rms.url(number))
    assert view.order_number == number
    assert len(rms.logins) == 1 and rms.logins[0].endswith(f"/rms/order/{number}"), "back on the page asked for"
    counted = logins(sandbox)
    assert counted["submissions"] == {"rlogin": 1, "member": 1}
    assert counted["full_logins"] == 1
    assert counted["refused"] == {"rlogin": 0, "member": 0}
    assert [e["number"] for e in sandbox.audit("rms", "notice_acknowledged")] == [1, 2, 3]
    assert rms.saved_login.exists()


def test_session_expiry_goes_through_both_stages_again(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    sandbox.fault("rms", expire_sessions=True)
    view = rms.page.confirm_order()
    assert view.status == "発送待ち"
    assert len(rms.logins) == 2
    counted = logins(sandbox)
    assert counted["submissions"] == {"rlogin": 2, "member": 2}
    assert counted["full_logins"] == 2
    assert sandbox.order(number)["confirm_clicks"] == 1


def test_saved_login_is_reused_without_a_second_full_login(rms: Rms, rms_browser: Browser,
                                                           sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    assert logins(sandbox)["full_logins"] == 1

    rms_browser.reset(SITE)  # a new context, as after an error or the next pass: from the saved login
    again = make_rms(rms_browser, sandbox)
    view = again.page.open(again.url(number))
    assert view.order_number == number
    assert again.logins == []
    counted = logins(sandbox)
    assert counted["full_logins"] == 1
    assert counted["submissions"] == {"rlogin": 1, "member": 1}


# --- the pages that stop the robot ----------------------------------------------------------
BLOCKED = {
    "rlogin_password_expired": ({"password_expired": "rlogin"}, "password_change",
                                r"new R-Login password.*set KUROKO_RMS_PASSWORD", {"rlogin": 1, "member": 0}),
    "member_password_expired": ({"password_expired": "member"}, "password_change",
                                r"new 楽天会員 password.*set KUROKO_RMS_MEMBER_PASSWORD", {"rlogin": 1, "member": 1}),
    "confirmation_code": ({"confirmation_code": True}, "verify",
                          r"confirmation code \(認証コードの入力\).*enter the code", {"rlogin": 1, "member": 1}),
    "locked": ({"locked": True}, "locked", r"locked the account.*unlock it", {"rlogin": 1, "member": 0}),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_a_blocking_page_stops_at_once_with_what_to_do(case: str, rms: Rms, sandbox: Sandbox) -> None:
    settings, page, message, submissions = BLOCKED[case]
    knobs(sandbox, **settings)
    number = sandbox.place_order([SIM])["order_number"]
    with pytest.raises(LoginBlocked, match=message) as raised:
        rms.page.open(rms.url(number))
    assert isinstance(raised.value, ConfigurationError)
    assert "will not try again" in raised.value.message
    assert rms.site.screen() == page
    shoot(rms, f"{case}")
    counted = logins(sandbox)
    assert counted["submissions"] == submissions, "the credentials were submitted once, never retried"
    assert counted["blocking_page_posts"] == 0, "nothing was typed on the blocking page"
    assert counted["full_logins"] == 0
    assert rms.logins == [] and not rms.saved_login.exists()
    for secret in ("rms-demo-password", "rakuten-member-demo-password"):
        assert secret not in raised.value.message


def test_a_blocked_login_in_the_middle_of_an_action_does_not_act(rms: Rms, sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    rms.page.open(rms.url(number))
    knobs(sandbox, password_expired="member")
    sandbox.fault("rms", expire_sessions=True)
    with pytest.raises(LoginBlocked, match="KUROKO_RMS_MEMBER_PASSWORD"):
        rms.page.confirm_order()
    assert sandbox.order(number)["confirm_clicks"] == 0
    assert logins(sandbox)["submissions"] == {"rlogin": 2, "member": 2}


def test_repeated_failures_lock_the_account(rms_browser: Browser, sandbox: Sandbox) -> None:
    knobs(sandbox, lock_after=2)
    number = sandbox.place_order([SIM])["order_number"]
    wrong = make_rms(rms_browser, sandbox, password="not-the-password")
    with pytest.raises(LoginRefused, match=r"R-Login refused.*KUROKO_RMS_PASSWORD"):
        wrong.page.open(wrong.url(number))
    with pytest.raises(LoginBlocked, match="locked the account"):
        wrong.page.open(wrong.url(number))
    assert logins(sandbox)["knobs"]["locked"] is True

    right = make_rms(rms_browser, sandbox)
    with pytest.raises(LoginBlocked, match="locked the account"):
        right.page.open(right.url(number))
    counted = logins(sandbox)
    assert counted["submissions"] == {"rlogin": 3, "member": 0}
    assert counted["refused"] == {"rlogin": 2, "member": 0}
    assert len(sandbox.audit("rms", "account_locked")) == 1

    knobs(sandbox, locked=False)
    assert right.page.open(right.url(number)).order_number == number


def test_wrong_member_password_is_refused_with_the_member_settings_named(rms_browser: Browser,
                                                                         sandbox: Sandbox) -> None:
    number = sandbox.place_order([SIM])["order_number"]
    robot = make_rms(rms_browser, sandbox)
    robot.site._member_password = "not-the-member-password"
    with pytest.raises(LoginRefused, match=r"楽天会員 login was refused.*KUROKO_RMS_MEMBER_PASSWORD"):
        robot.page.open(robot.url(number))
    shoot(robot, "member-refused")
    assert logins(sandbox)["refused"] == {"rlogin": 0, "member": 1}


def test_a_renamed_button_is_a_page_changed_before_any_submission(rms: Rms, sandbox: Sandbox) -> None:
    sandbox.fault("rms", rename_labels={"次へ": "進む"})
    number = sandbox.place_order([SIM])["order_number"]
    with pytest.raises(PageChanged, match=r"'login\.submit' did not appear"):
        rms.page.open(rms.url(number))
    assert logins(sandbox)["submissions"] == {"rlogin": 0, "member": 0}
    shoot(rms, "renamed-button")


# --- the selectors of the sign-in ----------------------------------------------------------
def test_every_sign_in_selector_resolves_on_its_screen(rms: Rms, sandbox: Sandbox) -> None:
    """Walk each sign-in screen (screenshots in test-results/screens/rms-login-*.png)."""
    site, page = rms.site, rms.site.page
    checked: set[str] = set()
    screens = ("login", "member_login", "notice", "password_change", "verify", "locked")
    all_keys = site.selectors.keys()
    every_key = [k for k in all_keys if k.split(".")[0] in screens]

    def resolves(*names: str) -> None:
        for name in names:
            assert site.el(name).count() >= 1, f"{name} matches nothing on {page.url}"
            checked.add(name)

    def submit(name: str) -> None:
        with page.expect_navigation():
            site.el(name).first.click()

    def stage_one() -> None:
        page.goto(sandbox.urls["rms"] + "/login")
        site.el("login.user").fill(site.user)
        site.el("login.password").fill(site._password)
        submit("login.submit")

    def stage_two(password: str | None = None) -> None:
        site.el("member_login.user").fill(site.member_user)
        site.el("member_login.password").fill(password or site._member_password)
        submit("member_login.submit")

    knobs(sandbox, notices=2)
    page.goto(sandbox.urls["rms"] + "/login")
    resolves("login.heading", "login.user", "login.password", "login.submit")
    shoot(rms, "stage1")
    site.el("login.user").fill("someone")
    site.el("login.password").fill("wrong")
    submit("login.submit")
    resolves("login.error")

    stage_one()
    assert site.screen() == "member_login"
    resolves("member_login.heading", "member_login.user", "member_login.password", "member_login.submit")
    shoot(rms, "stage2")
    stage_two("wrong")
    resolves("member_login.error")
    stage_two()
    assert site.screen() == "notice"
    resolves("notice.heading", "notice.acknowledge")
    shoot(rms, "notice1")
    submit("notice.acknowledge")
    resolves("notice.heading", "notice.next")
    shoot(rms, "notice2")
    submit("notice.next")
    assert site.screen() == "other" and page.url.endswith("/rms/order")
    assert logins(sandbox)["full_logins"] == 1

    for settings, screen in (({"password_expired": "rlogin"}, "password_change"),
                             ({"password_expired": None, "confirmation_code": True}, "verify"),
                             ({"confirmation_code": False, "locked": True}, "locked")):
        page.context.clear_cookies()
        knobs(sandbox, **settings)
        stage_one()
        if site.screen() == "member_login":
            stage_two()
        assert site.screen() == screen
        resolves(f"{screen}.heading")

    assert checked == set(every_key)
