"""The たまご 要対応 procedure (bots/tamago_attention.py) end to end: a real Chromium on the sandbox's
たまご admin, Zendesk for the hand-overs, the clock moved instead of waited for. What the robot did
is read back from たまご's own field-change history (``by: user`` is the robot's admin login) and
from the tickets the robot opened."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Sandbox
from robot import Robot, make_robot

from bots.tamago_attention import procedure, rules
from kuroko.ledger import ItemState

NAME = "tamago_attention"
DAY0 = date(2026, 11, 20)
"""The sandbox's first day (a Friday); the tests flag orders on it and work them the next day."""
DAY1 = date(2026, 11, 21)
NEXT_SHIPPING_DAY = date(2026, 11, 24)
"""After Saturday 11/21: Sunday is not a shipping day, Monday 11/23 is a holiday (勤労感謝の日)."""


@pytest.fixture
def robot(sandbox: Sandbox, settings_env: Path) -> Iterator[Robot]:
    with make_robot(sandbox, procedures=[procedure]) as robot:
        yield robot


# --- what たまご and Zendesk saw -------------------------------------------------------------------
def changes(sandbox: Sandbox, order_id: str) -> list[tuple[str, Any, Any]]:
    """The order's field changes made through the admin screens (the robot), in order."""
    return [(h["field"], h["old"], h["new"]) for h in sandbox.tamago(order_id)["history"] if h["by"] == "user"]


def changed_fields(sandbox: Sandbox, order_id: str) -> list[str]:
    return [f for f, _, _ in changes(sandbox, order_id)]


def handover_tickets(sandbox: Sandbox, order_id: str) -> list[dict[str, Any]]:
    subject = f"Kuroko: たまご order {order_id} needs a person"
    return [t for t in sandbox.state()["zendesk"]["tickets"] if t["subject"] == subject]


def handover_notes(sandbox: Sandbox, order_id: str) -> list[str]:
    found = handover_tickets(sandbox, order_id)
    assert len(found) <= 1, f"one hand-over ticket per order, not {len(found)}"
    return [c["body"] for t in found for c in t["comments"] if not c["public"]]


def item(robot: Robot, order_id: str) -> Any:
    found = robot.ledger.find_item(order_id, NAME)
    assert found is not None, f"the ledger has no {order_id}"
    return found


def flag_released(state: dict[str, Any]) -> bool:
    return state["flag"]["status"] == "解除" and (state["subscription_flag"] is None
                                                 or state["subscription_flag"]["status"] == "解除")


def new_day(sandbox: Sandbox) -> None:
    """The orders were flagged yesterday: work them the next morning."""
    sandbox.advance(days=1)


def released_today(sandbox: Sandbox, order_id: str, *, comment_has: tuple[str, ...] = ()) -> str:
    """The order was released by the robot today with a comment; returns the comment."""
    state = sandbox.tamago(order_id)
    assert flag_released(state), state["flag"]
    assert state["status"] == "発送準備中"
    assert state["flag"]["date"] == DAY1.isoformat()
    comment = state["flag"]["comment"]
    assert comment.startswith("Kuroko: ")
    for text in comment_has:
        assert text in comment, comment
    return str(comment)


def assert_untouched(sandbox: Sandbox, order_id: str) -> None:
    state = sandbox.tamago(order_id)
    assert changes(sandbox, order_id) == [], "the robot changed nothing in たまご"
    assert state["flagged"] and state["flag"]["status"] == "設定"


# --- the reasons the robot works itself --------------------------------------------------------------
def test_blacklist_candidate_checked_by_customer_search(robot: Robot, sandbox: Sandbox) -> None:
    clean = sandbox.tamago_order("blacklist_candidate", blacklisted_match=False)["order_id"]
    match = sandbox.tamago_order("blacklist_candidate", blacklisted_match=True)["order_id"]
    new_day(sandbox)
    robot.run_pass()

    comment = released_today(sandbox, clean, comment_has=("ブラックリスト客候補", "顧客検索（電話番号）で一致1件"))
    assert changes(sandbox, clean) == [("flag", "設定", "解除"), ("flag_date", DAY0.isoformat(), DAY1.isoformat()),
                                       ("flag_comment", "", comment)]
    assert handover_tickets(sandbox, clean) == [] and item(robot, clean).state == ItemState.DONE.value

    assert_untouched(sandbox, match)
    assert item(robot, match).state == ItemState.HELD.value and item(robot, match).step == "check_blacklist"
    [note] = handover_notes(sandbox, match)
    assert "ブラックリスト客候補: 顧客検索 by 電話番号 finds 1 blacklisted customer(s)" in note
    assert "ブラックリスト客" in note and "Needed: Compare the buyer with the customer(s)" in note


def test_blacklist_check_uses_the_configured_fields(sandbox: Sandbox, settings_env: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.post("/admin/tamago/settings", {"blacklist_check": ["phone", "name"]})
    monkeypatch.setenv("KUROKO_TAMAGO_BLACKLIST_CHECK", '["phone", "name"]')
    order_id = sandbox.tamago_order("blacklist_candidate", blacklisted_match=False)["order_id"]
    new_day(sandbox)
    with make_robot(sandbox, procedures=[procedure]) as robot:
        assert rules().tamago_blacklist_check == ["phone", "name"]
        robot.run_pass()
    released_today(sandbox, order_id, comment_has=("顧客検索（電話番号・氏名）で一致1件",))
