"""A robot wired to the test sandbox, and questions about what the sandbox saw it do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import ROOT, Sandbox

from kuroko.clock import clock_from_url
from kuroko.connections import Connections
from kuroko.ledger import Ledger, WorkItem
from kuroko.runner import PassReport, Runner
from kuroko.settings import Settings, get_settings, reload_settings

ODC = "[Rakuten Marketplace] Order Details Confirmation (automatic email)"
OC = "[Rakuten Marketplace] Order Confirmation (automatic email)"
SIDE_EFFECTS = {
    ("rms", "confirm_order"), ("rms", "mail_sent"), ("rms", "shipping_set"), ("boss", "order_deleted"),
    ("boss", "order_cancelled"), ("zendesk", "comment_added"),
}


@dataclass
class Robot:
    settings: Settings
    ledger: Ledger
    connections: Connections
    runner: Runner
    sandbox: Sandbox

    def run_pass(self) -> PassReport:
        return self.runner.run_pass()

    def order(self, order_number: str) -> WorkItem:
        order = self.ledger.find_item(order_number)
        assert order is not None, f"the ledger has no {order_number}"
        return order

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real `kuroko` command, on the same settings (environment)."""
        return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              env=os.environ.copy(), timeout=300)


@contextmanager
def make_robot(sandbox: Sandbox, **runner_kw: Any) -> Iterator[Robot]:
    reload_settings()
    settings = get_settings()
    ledger = Ledger(settings.ledger_database_url())
    connections = runner_kw.pop("connections", None) or Connections(settings)
    runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url), **runner_kw)
    try:
        yield Robot(settings, ledger, connections, runner, sandbox)
    finally:
        connections.close()
        ledger.close()


# --- what the sandbox saw ------------------------------------------------------------------
def tickets(sandbox: Sandbox) -> list[dict[str, Any]]:
    return list(sandbox.state()["zendesk"]["tickets"])


def tickets_of(sandbox: Sandbox, order_number: str) -> list[dict[str, Any]]:
    return [t for t in tickets(sandbox) if any(order_number in c["body"] for c in t["comments"])]


def primary_ticket(sandbox: Sandbox, order_number: str) -> dict[str, Any]:
    return min(tickets_of(sandbox, order_number), key=lambda t: t["id"])


def internal_notes(ticket: dict[str, Any]) -> list[str]:
    """The robot's own internal notes (each carries its [kuroko:…] marker); merge comments are not."""
    return [c["body"] for c in ticket["comments"] if not c["public"] and "[kuroko:" in c["body"]]


def side_effects(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every change made in BOSS, RMS and Zendesk comments (not ticket creation by mail)."""
    return [e for e in sandbox.audit() if (e["system"], e["action"]) in SIDE_EFFECTS]


def mcf_orders(sandbox: Sandbox) -> list[dict[str, Any]]:
    return list(sandbox.state()["amazon"]["fulfillment_orders"])


def evidence_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "evidence").rglob("*")) if (data_dir / "evidence").exists() else []
