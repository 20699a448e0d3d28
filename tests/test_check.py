"""`kuroko check` (issue 17, acceptance 3): a read-only preflight. Against a healthy sandbox every
line is OK and the sandbox's audit shows nothing but sign-ins; with a wrong RMS password, a renamed
label, a wrong Zendesk token or a refused SP-API token the right line says what to fix, the exit
code is non-zero, and nothing is changed anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Sandbox

DATA_SIM = "SIM-DATA-30D-20GB"
SIGN_IN = {"login", "login_submitted", "login_refused", "login_failed", "login_blocked", "notice_acknowledged",
           "access_token_issued", "access_token_refused", "token_refused", "account_locked"}
"""Audit entries of signing in (the check may sign in; it changes nothing else)."""


def changes(sandbox: Sandbox, since: int) -> list[dict[str, Any]]:
    return [e for e in sandbox.audit()[since:] if e["action"] not in SIGN_IN]


def kuroko(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "400", **(env or {})}, timeout=300)


def lines(stdout: str) -> dict[str, str]:
    """'system: what' → the whole line."""
    out = {}
    for line in stdout.splitlines():
        mark, _, rest = line.partition(" ")
        if mark in ("OK", "FIX"):
            out[rest.strip().split(" — ")[0]] = line
    return out


def test_a_healthy_sandbox_is_all_ok_and_nothing_changes(sandbox: Sandbox, settings_env: Path) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    before_audit, before_state = len(sandbox.audit()), sandbox.state()
    result = kuroko("check", "--order", number)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result.stdout)
    assert all(line.startswith("OK") for line in found.values()), result.stdout
    for key in ("kuroko: clock", "kuroko: ledger", "boss: login", "boss: order list", "boss: order detail",
                "rakuten: login", "rakuten: landing page", "rakuten: order page", "zendesk: credentials",
                "zendesk: intake search", "zendesk: hold tag", "zendesk: @mention user", "sp-api: token",
                "sp-api: read call", "sp-api: marketplace", "sp-api: quota headers"):
        assert key in found, f"no line {key!r}:\n{result.stdout}"
    assert "not checked" in found["rakuten: not checked"] and "mail_preview" in found["rakuten: not checked"]
    assert f"order {number} read" in found["rakuten: order page"]
    assert "x-amzn-ratelimit-limit" in found["sp-api: quota headers"].lower()
    assert "Japan Office" in found["zendesk: @mention user"]
    assert changes(sandbox, before_audit) == []
    after = sandbox.state()
    assert after["amazon"]["fulfillment_orders"] == before_state["amazon"]["fulfillment_orders"]
    assert after["zendesk"]["tickets"] == before_state["zendesk"]["tickets"]
    assert sandbox.order(number)["confirm_clicks"] == 0
    assert not (settings_env / "ledger.sqlite").exists(), "the check creates no ledger"
    assert not (settings_env / "sessions").exists(), "the check keeps no saved login"


@pytest.mark.parametrize(("fault", "line", "says"), [
    ("rms_password", "rakuten: login", "KUROKO_RMS_PASSWORD"),
    ("renamed_label", "rakuten: order page", "order.confirm_button"),
    ("zendesk_token", "zendesk: credentials", "KUROKO_ZENDESK_TOKEN"),
    ("spapi_token", "sp-api: token", "KUROKO_SPAPI_REFRESH_TOKEN"),
])
def test_a_fault_fails_the_right_line_and_nothing_changes(sandbox: Sandbox, settings_env: Path, fault: str,
                                                          line: str, says: str) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    env: dict[str, str] = {}
    if fault == "rms_password":
        env["KUROKO_RMS_PASSWORD"] = "not-the-password"
    elif fault == "renamed_label":
        sandbox.fault("rms", rename_labels={"注文確認": "受注確認"})
    elif fault == "zendesk_token":
        env["KUROKO_ZENDESK_TOKEN"] = "not-the-token"
    else:
        sandbox.fault("spapi", refuse_token=True)
    before = len(sandbox.audit())
    result = kuroko("check", "--order", number, env=env)
    assert result.returncode != 0, result.stdout
    found = lines(result.stdout)
    failed = {k for k, v in found.items() if v.startswith("FIX")}
    # The right line fails; a line that needs it (the @mention look-up needs Zendesk's credentials)
    # may fail with it, never a line of another system.
    assert line in failed and {k.split(":")[0] for k in failed} == {line.split(":")[0]}, result.stdout
    assert says in found[line], found[line]
    assert "checks need fixing" in result.stdout
    assert "not-the-password" not in result.stdout and "not-the-token" not in result.stdout
    assert changes(sandbox, before) == []
    if fault == "rms_password":
        assert len(sandbox.audit("rms", "login_submitted")) == 1, "one submission, never a retry"
    assert sandbox.order(number)["confirm_clicks"] == 0


def test_schedule_refuses_to_start_when_the_check_fails(sandbox: Sandbox, settings_env: Path, tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.toml"
    schedule.write_text('[[jobs]]\nid = "a"\nprocedure = "rakuten_sim_order"\ntrigger = "interval"\nseconds = 5\n')
    before = len(sandbox.audit())
    result = kuroko("schedule", "--file", str(schedule), env={"KUROKO_RMS_PASSWORD": "not-the-password"})
    assert result.returncode != 0
    assert "the scheduler did not start" in result.stderr and "KUROKO_RMS_PASSWORD" in result.stderr, result.stderr
    assert changes(sandbox, before) == []
    assert not (settings_env / "ledger.sqlite").exists()
