"""RMS's two-stage sign-in through the robot itself (issue 17, acceptance 1–2): `kuroko run --once`
signs in through R-Login, the 楽天会員 login and the お知らせ, and does its work; after a session
expiry it signs in again; an expired password, a confirmation code or a locked account stops the run
(exit non-zero, the message saying what to do) before any other click, with the credentials
submitted exactly once. A wrong RMS or BOSS password stops the run at the first refusal
(LoginRefused, a ConfigurationError) instead of being retried item after item — on a real account
that would lock it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Sandbox
from robot import side_effects

from kuroko.ledger import Ledger
from kuroko.settings import get_settings

DATA_SIM = "SIM-DATA-30D-20GB"


def logins(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.get("/admin/rms/logins")


def knobs(sandbox: Sandbox, **values: Any) -> dict[str, Any]:
    return sandbox.post("/admin/rms/login", values)


def run_once(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "run", "--once"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "300", **env}, timeout=600)


def flat(text: str) -> str:
    """Without whitespace: the console wraps long messages."""
    return "".join(text.split())


def items_not_held() -> None:
    ledger = Ledger(get_settings().ledger_database_url())
    try:
        for item in ledger.items():
            assert item.state == "active" and item.hold_code is None and item.attempt == 0, (item.key, item.state)
    finally:
        ledger.close()


def test_the_robot_signs_in_through_both_stages_and_again_after_an_expiry(sandbox: Sandbox,
                                                                          settings_env: Path) -> None:
    knobs(sandbox, notices=2)
    first = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    result = run_once()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sandbox.order(first)["confirm_clicks"] == 1, "signed in, it did its work in RMS"
    counted = logins(sandbox)
    assert counted["submissions"] == {"rlogin": 1, "member": 1}
    assert counted["full_logins"] == 1
    assert len(sandbox.audit("rms", "notice_acknowledged")) == 2

    sandbox.fault("rms", expire_sessions=True)
    second = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    result = run_once()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sandbox.order(second)["confirm_clicks"] == 1
    counted = logins(sandbox)
    assert counted["submissions"] == {"rlogin": 2, "member": 2}, "signed in again, through both stages, once"
    assert counted["full_logins"] == 2
    assert counted["blocking_page_posts"] == 0


@pytest.mark.parametrize(("knob", "says", "submitted"), [
    ({"password_expired": "rlogin"}, "KUROKO_RMS_PASSWORD", {"rlogin": 1, "member": 0}),
    ({"password_expired": "member"}, "KUROKO_RMS_MEMBER_PASSWORD", {"rlogin": 1, "member": 1}),
    ({"confirmation_code": True}, "認証コードの入力", {"rlogin": 1, "member": 1}),
    ({"locked": True}, "アカウントロック", {"rlogin": 1, "member": 0}),
])
def test_a_blocking_page_stops_the_run_before_any_other_click(sandbox: Sandbox, settings_env: Path,
                                                              knob: dict[str, Any], says: str,
                                                              submitted: dict[str, int]) -> None:
    numbers = [sandbox.place_order([DATA_SIM])["order_number"] for _ in range(2)]
    sandbox.advance(minutes=31)
    knobs(sandbox, **knob)
    before = len(side_effects(sandbox))
    result = run_once()
    assert result.returncode != 0, result.stdout
    said = flat(result.stderr)
    assert flat(says) in said, result.stderr
    assert flat("will not try again") in said and "configuration:" in said
    counted = logins(sandbox)
    assert counted["submissions"] == submitted, "each pair of credentials submitted once, no retry"
    assert counted["blocking_page_posts"] == 0, "nothing typed on the blocking page"
    assert side_effects(sandbox)[before:] == [], "no other click anywhere"
    for number in numbers:
        assert sandbox.order(number)["confirm_clicks"] == 0
    items_not_held()


@pytest.mark.parametrize(("setting", "system"), [("KUROKO_RMS_PASSWORD", "rms"), ("KUROKO_BOSS_PASSWORD", "boss")])
def test_a_wrong_password_stops_the_run_at_the_first_refusal(sandbox: Sandbox, settings_env: Path, setting: str,
                                                             system: str) -> None:
    numbers = [sandbox.place_order([DATA_SIM])["order_number"] for _ in range(3)]
    sandbox.advance(minutes=31)
    before = len(side_effects(sandbox))
    result = run_once(**{setting: "not-the-password"})
    assert result.returncode != 0, result.stdout
    said = flat(result.stderr)
    assert setting in said and ("loginrefused" in said or "R-Loginrefusedthelogin" in said), result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    refused = [e for e in sandbox.audit(system) if e["action"] in ("login_refused", "login_failed")]
    assert len(refused) == 1, f"tried once, not item after item: {refused}"
    if system == "rms":
        assert logins(sandbox)["submissions"] == {"rlogin": 1, "member": 0}
    assert side_effects(sandbox)[before:] == []
    for number in numbers:
        assert sandbox.order(number)["confirm_clicks"] == 0
    items_not_held()
