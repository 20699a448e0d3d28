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


def test_discount_candidate_by_the_seeds_three_rules(robot: Robot, sandbox: Sandbox) -> None:
    one = sandbox.tamago_order("discount_candidate")["order_id"]  # one active subscriber (phone + postal code)
    none = sandbox.tamago_order("discount_candidate", discount_matches=[])["order_id"]
    several = sandbox.tamago_order("discount_candidate", discount_matches=[
        {"rule": "phone+name"}, {"rule": "postal_code+name"}])["order_id"]
    inactive = sandbox.tamago_order("discount_candidate", discount_matches=[
        {"rule": "postal_code+name", "active": False}])["order_id"]
    new_day(sandbox)
    robot.run_pass()

    comment = released_today(sandbox, one, comment_has=("定期割引候補", "定期会員割引を適用"))
    assert changes(sandbox, one) == [("member_discount", False, True), ("flag", "設定", "解除"),
                                     ("flag_date", DAY0.isoformat(), DAY1.isoformat()), ("flag_comment", "", comment)]
    state = sandbox.tamago(one)
    assert state["discount_yen"] == state["subtotal"] // 10

    released_today(sandbox, none, comment_has=("一致する顧客なし、定期会員割引なし",))
    assert "member_discount" not in changed_fields(sandbox, none)

    for order_id, found in ((several, "2 customers match the buyer"), (inactive, "the matching customer's subscription is stopped")):
        assert_untouched(sandbox, order_id)
        [note] = handover_notes(sandbox, order_id)
        assert f"定期割引候補: {found}" in note and "Needed: Decide whether the buyer is one of the customers" in note
        assert item(robot, order_id).step == "check_discount"

    # The person decided (no discount for the inactive one): Kuroko releases, discount untouched.
    robot.runner.release(item(robot, inactive), robot.runner.clock.now(), by="person (test)", remove_tag=True)
    robot.run_pass()
    released_today(sandbox, inactive, comment_has=("定期割引候補: 担当者が確認済み",))
    assert "member_discount" not in changed_fields(sandbox, inactive)


def test_remote_island_corrected_then_released_after_the_person(robot: Robot, sandbox: Sandbox) -> None:
    normal = sandbox.tamago_order("remote_island")["order_id"]
    sub = sandbox.tamago_order("remote_island", subscription=True, cycle=2)["order_id"]
    new_day(sandbox)
    robot.run_pass()
    fee = rules().tamago_island_shipping_fee_yen
    interval = rules().tamago_island_interval_days

    assert changes(sandbox, normal) == [("shipping_fee", 550, fee)]
    assert changes(sandbox, sub) == [("shipping_fee", 550, fee), ("interval_days", 30, interval)]
    for order_id in (normal, sub):
        state = sandbox.tamago(order_id)
        assert state["flagged"] and state["status"] == "新規受付", "the flag stays until the customer was told"
        [note] = handover_notes(sandbox, order_id)
        assert f"離島からのご注文 (〒{state['customer']['postal_code']}" in note
        assert f"送料 {fee:,}円 (was 550円)" in note
        assert "Needed: Tell the customer" in note
        assert item(robot, order_id).step == "tell_island_customer"
    assert f"お届け間隔 {interval}日ごと (was 30日ごと)" in handover_notes(sandbox, sub)[0]

    robot.run_pass()  # nothing happens while the person has it
    assert changed_fields(sandbox, normal) == ["shipping_fee"]

    result = robot.cli("release", normal, "--procedure", NAME)
    assert result.returncode == 0, result.stderr
    robot.runner.release(item(robot, sub), robot.runner.clock.now(), by="person (test)", remove_tag=True)
    robot.run_pass()
    for order_id in (normal, sub):
        released_today(sandbox, order_id, comment_has=("離島からのご注文", "担当者がお客様へ連絡済み"))
        fields = changed_fields(sandbox, order_id)
        assert fields.count("shipping_fee") == 1 and fields.index("shipping_fee") < fields.index("flag")
        assert item(robot, order_id).state == ItemState.DONE.value
    assert changed_fields(sandbox, sub)[-3:] == ["subscription_flag", "subscription_flag_date",
                                                 "subscription_flag_comment"]
    assert "kuroko_hold" not in handover_tickets(sandbox, normal)[0]["tags"]


def test_subscription_order_overdue_date_moved_first_both_flags_in_one_visit(robot: Robot, sandbox: Sandbox) -> None:
    order_id = sandbox.tamago_order("discount_candidate", subscription=True, ship_in_days=-2)["order_id"]
    new_day(sandbox)
    assert sandbox.tamago(order_id)["overdue"]
    robot.run_pass()

    comment = released_today(sandbox, order_id, comment_has=(
        f"発送予定日が過ぎていたため{date(2026, 11, 18)}から{NEXT_SHIPPING_DAY}に変更",))
    history = [h for h in sandbox.tamago(order_id)["history"] if h["by"] == "user"]
    assert [(h["field"], h["old"], h["new"]) for h in history] == [
        ("member_discount", False, True),
        ("ship_date", "2026-11-18", NEXT_SHIPPING_DAY.isoformat()),
        ("flag", "設定", "解除"), ("flag_date", DAY0.isoformat(), DAY1.isoformat()), ("flag_comment", "", comment),
        ("subscription_flag", "設定", "解除"), ("subscription_flag_date", DAY0.isoformat(), DAY1.isoformat()),
        ("subscription_flag_comment", "", comment),
    ]
    assert len({h["at"] for h in history}) == 1, "one visit, one pass"
    released = sandbox.audit("tamago", "order_released")
    assert [e["released_overdue"] for e in released if e["order_id"] == order_id] == [False]

    robot.run_pass()  # the same pass again changes nothing
    assert len(changes(sandbox, order_id)) == len(history)
