"""A wrong setting met inside a step (here: no Chromium where KUROKO_BROWSER_PATH says) stops the
run and names the setting — `kuroko run` and `kuroko schedule` both exit non-zero — and nothing is
handed to a person for it: no hold, no note in Zendesk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Sandbox
from robot import internal_notes, primary_ticket

from kuroko.ledger import Ledger
from kuroko.settings import get_settings

DATA_SIM = "SIM-DATA-30D-20GB"


@pytest.mark.parametrize("command", [["run", "--once"], ["schedule", "--no-check"]])
def test_a_missing_chromium_stops_the_run_and_holds_nothing(sandbox: Sandbox, settings_env: Path, tmp_path: Path,
                                                            command: list[str]) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)  # due for BOSS: the browser is needed
    env = {**os.environ, "KUROKO_BROWSER_PATH": str(tmp_path / "no-chromium"),
           "KUROKO_HEADLESS_SHELL_PATH": str(tmp_path / "no-headless-shell"), "COLUMNS": "300"}
    result = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *command], cwd=ROOT, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode != 0, result.stdout
    assert "KUROKO_BROWSER_PATH" in result.stderr, result.stderr
    ledger = Ledger(get_settings().ledger_database_url())
    try:
        order = ledger.find_item(number)
        assert order is not None and order.state == "active" and order.attempt == 0 and order.hold_code is None
    finally:
        ledger.close()
    assert internal_notes(primary_ticket(sandbox, number)) == [], "nothing about a robot setting in Zendesk"

