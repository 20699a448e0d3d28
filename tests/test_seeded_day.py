"""A whole seeded day, as a new user meets it: `kuroko demo` runs 50 mixed orders through the
sandbox with the clock moving; every order ends complete or held with a reason, `kuroko status`
shows that, and the robot's account of what it did matches what the sandbox saw."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from kuroko.ledger import Ledger


@pytest.mark.timeout(1800)  # a whole day: about 3 minutes on a quiet 2-core machine, far more on a busy one
def test_a_seeded_day_of_fifty_orders_ends_complete_or_held(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {**os.environ, "KUROKO_DATA_DIR": str(data), "COLUMNS": "200"}
    demo = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "demo", "--orders", "50", "--seed", "11",
                           "--data-dir", str(data)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    # The demo exits non-zero when its ledger and the sandbox's admin API disagree.
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "✗" not in demo.stdout
    assert (data / "report.html").exists()

    ledger = Ledger(f"sqlite:///{data / 'ledger.sqlite'}")
    items = ledger.items()
    orders = [i for i in items if i.procedure == "rakuten_sim_order"]
    assert len(orders) >= 50
    assert {o.state for o in orders} <= {"done", "held"}, [(o.key, o.state, o.step) for o in orders
                                                          if o.state not in ("done", "held")]
    held = [o for o in orders if o.state == "held"]
    assert held and all(o.hold_reason for o in held)
    paths = {o.path for o in orders if o.state == "done"}
    assert {"in_stock", "mcf", "office"} <= paths
    tamago = [i for i in items if i.procedure == "tamago_attention"]
    assert {i.state for i in tamago} >= {"done", "held"}, "the たまご day released some orders, handed some over"
    bcart = [i for i in items if i.procedure == "bcart_orders"]
    assert any(i.state == "done" for i in bcart), "a Bカート order went from 新規注文 to 完了"

    status = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "status"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert f"{len(items)} work items" in status.stdout
    assert "Held for a person" in status.stdout
    for item in held + [i for i in tamago if i.state == "held"]:
        assert item.key in status.stdout
