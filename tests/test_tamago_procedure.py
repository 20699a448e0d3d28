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

from bots.tamago_attention import TamagoAttentionRules, discount_rule_matches, procedure, rules
from kuroko.errors import ConfigurationError
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

    stopped = "the matching customer's subscription is stopped"
    for order_id, found in ((several, "2 customers match the buyer"), (inactive, stopped)):
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


# --- the reasons only a person can work -----------------------------------------------------------------
PERSON_CASES = [
    ("np_ng_1", {}, "ask_payment_change", "NP与信NG",
     "Needed: Contact the customer (tel and e-mail above): NP後払い refused"),
    ("np_ng_2", {"subscription": True, "cycle": 2}, "ask_payment_change", "NP与信NG", "choose another payment method"),
    ("np_ng_3", {}, "ask_payment_change", "NP与信NG", "choose another payment method"),
    ("np_ng_4", {}, "ask_payment_change", "NP与信NG", "choose another payment method"),
    ("np_unknown", {}, "contact_net_protections", "pattern 5", "Needed: Contact Net Protections"),
    ("amount_mismatch", {}, "redo_np_authorisation", "入金額", "Needed: Redo the NP authorisation (与信)"),
    ("payment_failed", {"cycle": 3}, "payment_failed", "the charge that failed is the NEXT one's",
     "Do NOT cancel this order: it is the order BEFORE the one whose charge failed"),
    ("blacklisted", {}, "blacklisted_customer", "ブラックリスト客: the buyer is on the shop's blacklist",
     "Needed: Decide with the shop whether to ship to this ブラックリスト客"),
]


@pytest.mark.parametrize(("reason", "body", "step", "found", "needed"), PERSON_CASES,
                         ids=[c[0] for c in PERSON_CASES])
def test_reason_for_a_person(robot: Robot, sandbox: Sandbox, reason: str, body: dict[str, Any], step: str,
                             found: str, needed: str) -> None:
    order = sandbox.tamago_order(reason, **body)
    order_id = order["order_id"]
    new_day(sandbox)
    robot.run_pass()

    assert_untouched(sandbox, order_id)
    assert sandbox.tamago(order_id)["status"] == order["status"], "nothing cancelled, nothing moved"
    held = item(robot, order_id)
    assert held.state == ItemState.HELD.value and held.step == step and held.path == "person"
    [ticket] = handover_tickets(sandbox, order_id)
    assert "kuroko_hold" in ticket["tags"] and ticket["status"] == "open"
    [note] = handover_notes(sandbox, order_id)
    assert found in note and needed in note
    for message in order["messages"]:
        assert f"「{message}」" in note, "the note quotes たまご's message"
    assert "Kuroko changed nothing and never cancels" in note

    if reason != "payment_failed":
        return
    # The person's `kuroko release` never makes Kuroko release this order: it only waits for たまご.
    robot.runner.release(held, robot.runner.clock.now(), by="person (test)", remove_tag=True)
    robot.run_pass()
    assert_untouched(sandbox, order_id)
    assert item(robot, order_id).step == "wait_for_person" and item(robot, order_id).state == ItemState.ACTIVE.value


def test_hand_set_flag_never_released_and_escalated(robot: Robot, sandbox: Sandbox) -> None:
    hand_set = sandbox.tamago_order("manual", comment="在庫確認のため出荷保留（担当：山田）")["order_id"]
    np_ng = sandbox.tamago_order("np_ng_4")["order_id"]
    new_day(sandbox)
    robot.run_pass()
    assert_untouched(sandbox, hand_set)
    assert item(robot, hand_set).step == "wait_for_person" and item(robot, hand_set).path == "hand_set"
    assert handover_tickets(sandbox, hand_set) == [], "a person set it: nobody needs telling yet"

    days = rules().tamago_escalate_after_days
    sandbox.advance(days=days - 2)
    robot.run_pass()
    assert handover_tickets(sandbox, hand_set) == [] and len(handover_notes(sandbox, np_ng)) == 1

    sandbox.advance(days=1)  # flagged `days` days ago
    robot.run_pass()
    robot.run_pass()
    [note] = handover_notes(sandbox, hand_set)
    assert f"has been 要対応 since {DAY0} ({days} days; the limit is {days})" in note
    assert "flagged by hand (no system reason)" in note and "在庫確認のため出荷保留" in note
    np_notes = handover_notes(sandbox, np_ng)
    assert len(np_notes) == 2 and "Escalation:" in np_notes[1] and "Needed today: Contact the customer" in np_notes[1]
    assert_untouched(sandbox, hand_set)
    assert_untouched(sandbox, np_ng)


# --- bad input: a person, with evidence; the pass goes on -------------------------------------------------
def test_unknown_message_changed_page_and_vanished_order_go_to_a_person(
        sandbox: Sandbox, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUROKO_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("KUROKO_ELEMENT_TIMEOUT_MS", "1500")
    # Newest first: the changed page (whose error resets the browser) is met last.
    renamed = sandbox.tamago_order("blacklist_candidate", blacklisted_match=False)["order_id"]
    unknown = sandbox.tamago_order("discount_candidate", discount_matches=[])["order_id"]
    vanished = sandbox.tamago_order("np_ng_1")["order_id"]
    np_ng = sandbox.tamago_order("np_ng_4")["order_id"]
    new_day(sandbox)
    sandbox.post("/admin/tamago/labels", {"label": "要対応を更新する", "to": "要対応を登録する"})
    new_message = "お届け先の確認が必要です（配送業者より）"

    def delete_after_intake(event: str, data: dict[str, Any]) -> None:
        if event == "pass_started":  # after 注文検索 was read, before the order is opened
            sandbox.client.delete(f"{sandbox.admin}/admin/tamago/orders/{vanished}").raise_for_status()

    with make_robot(sandbox, procedures=[procedure], listener=delete_after_intake) as robot:
        page = robot.connections.browser.page("tamago")

        def new_reason(route: Any) -> None:  # たまご shows a message no rule knows
            response = route.fetch()
            route.fulfill(response=response, body=response.text().replace("定期割引候補", new_message))

        page.route(f"**/orders/{unknown}", new_reason)
        report = robot.run_pass()
        assert report.items_run == 4 and report.stopped_early is None

        held = {order_id: item(robot, order_id) for order_id in (unknown, renamed, vanished, np_ng)}
        assert all(i.state == ItemState.HELD.value for i in held.values())
        assert held[unknown].step == "unknown_reason"
        assert held[renamed].step == "release"
        assert held[vanished].step == "examine"
        assert held[np_ng].step == "ask_payment_change"

    [note] = handover_notes(sandbox, unknown)
    assert f"「{new_message}」" in note and "Needed: Look up the 要対応 message above" in note
    assert "Screenshot (on the robot's machine): 20261121T090000-unknown_reason-tamago.png" in note
    [note] = handover_notes(sandbox, renamed)
    assert "release failed 1 time: tamago: 'flag_form.submit' did not appear" in note
    assert "Evidence (on the robot's machine):" in note and "-tamago.png" in note
    assert "Needed: Release the order in たまご by hand" in note
    [note] = handover_notes(sandbox, vanished)
    assert f"たまご order {vanished} is gone: its page says 注文が見つかりません" in note
    assert "Needed: Open the order in たまご by hand" in note
    assert "Screenshot (on the robot's machine): 20261121T090000-vanished-tamago.png" in note
    assert (settings_env / "evidence" / vanished / "20261121T090000-vanished-tamago.png").exists()
    assert len(handover_notes(sandbox, np_ng)) == 1, "the pass went on"
    for order_id in (unknown, renamed, np_ng):
        assert_untouched(sandbox, order_id)
    assert list((settings_env / "evidence" / renamed).glob("*-release-attempt1-tamago.png"))


# --- crash safety: killed after any click, nothing twice ------------------------------------------------------
def run_once(env: dict[str, str], crash_after: int | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**env, **({"KUROKO_CRASH_AFTER_ACTIONS": str(crash_after)} if crash_after else {})}
    return subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "run", "--once", "--procedure", NAME], cwd=ROOT,
                          env=run_env, capture_output=True, text=True, timeout=300)


def crash_until_done(env: dict[str, str]) -> list[int]:
    """`kuroko run --once` killed right after its first side effect, again and again, until a run
    finishes: every side effect of the pass is a kill point once (the run after it must see it done)."""
    codes: list[int] = []
    for _ in range(30):
        result = run_once(env, 1)
        codes.append(result.returncode)
        if result.returncode == 0:
            return codes
        assert "KUROKO_CRASH_AFTER_ACTIONS: SIGKILL after side effect" in result.stderr, result.stderr[-3000:]
    raise AssertionError(f"no run finished: {codes}")


def test_killed_after_any_click_changes_nothing_twice(sandbox: Sandbox, settings_env: Path) -> None:
    discount = sandbox.tamago_order("discount_candidate", subscription=True, ship_in_days=-2)["order_id"]
    island = sandbox.tamago_order("remote_island", subscription=True, cycle=2)["order_id"]
    match = sandbox.tamago_order("blacklist_candidate", blacklisted_match=True)["order_id"]
    new_day(sandbox)
    env = dict(os.environ)

    codes = crash_until_done(env)  # a kill after each of the pass's side effects
    assert len(codes) >= 7 and codes[-1] == 0, codes
    result = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", "release", island, "--procedure", NAME],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    codes += crash_until_done(env)  # the island order's two 対応状況: killed between them

    for order_id in (discount, island, match):
        twice = {f: n for f, n in Counter(changed_fields(sandbox, order_id)).items() if n > 1}
        assert twice == {}, f"order {order_id}: changed more than once: {twice}"
        notes = handover_notes(sandbox, order_id)
        markers = [line for note in notes for line in note.splitlines() if line.startswith("[kuroko:")]
        assert len(markers) == len(set(markers)), f"order {order_id}: a note written twice: {markers}"
    for order_id in (discount, island):
        state = sandbox.tamago(order_id)
        assert flag_released(state) and state["status"] == "発送準備中"
    assert changed_fields(sandbox, discount)[:2] == ["member_discount", "ship_date"]
    assert changed_fields(sandbox, island)[:2] == ["shipping_fee", "interval_days"]
    assert_untouched(sandbox, match)
    assert [e["released_overdue"] for e in sandbox.audit("tamago", "order_released")] == [False, False]
    assert run_once(env, None).returncode == 0 and len(changes(sandbox, discount)) == 8, "a last pass: nothing"


# --- the rules without a browser ---------------------------------------------------------------------------
def test_next_shipping_day_skips_weekends_and_listed_holidays() -> None:
    calendar = TamagoAttentionRules(tamago_shipping_weekdays=[0, 1, 2, 3, 4],
                                    tamago_shipping_holidays=[date(2026, 11, 23), date(2026, 12, 31)])
    assert calendar.next_shipping_day(date(2026, 11, 20)) == date(2026, 11, 24)  # Fri → (Sat, Sun, holiday) → Tue
    assert calendar.next_shipping_day(date(2026, 11, 24)) == date(2026, 11, 25)
    assert calendar.next_shipping_day(date(2026, 12, 30)) == date(2027, 1, 1)
    saturdays = TamagoAttentionRules(tamago_shipping_weekdays=[5], tamago_shipping_holidays=[])
    assert saturdays.next_shipping_day(date(2026, 11, 21)) == date(2026, 11, 28)
    with pytest.raises(ConfigurationError, match="no shipping day"):
        TamagoAttentionRules(tamago_shipping_weekdays=[], tamago_shipping_holidays=[]).next_shipping_day(DAY0)
    default = TamagoAttentionRules()
    assert [d for d in default.tamago_shipping_holidays if d.month == 1 and d.day <= 3] == [
        date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)]


def test_discount_rules_are_any_two_of_phone_postal_code_and_name() -> None:
    from pages.tamago.models import CustomerMatch

    buyer = {"phone": "090-1234-5678", "postal_code": "160-0023", "name": "山田 太郎"}

    def match(**fields: str) -> CustomerMatch:
        values = {**{"phone": "080-0000-0000", "postal_code": "999-9999", "name": "別人 花子"}, **fields}
        return CustomerMatch(customer_id="1", address="", blacklisted=False, subscriptions=[], **values)

    class View:
        phone, postal_code, customer_name = buyer["phone"], buyer["postal_code"], buyer["name"]

    view: Any = View()
    assert discount_rule_matches(view, match(phone="09012345678", postal_code="1600023"))
    assert discount_rule_matches(view, match(phone="090-1234-5678", name="山田太郎"))
    assert discount_rule_matches(view, match(postal_code="160-0023", name="山田　太郎"))
    assert not discount_rule_matches(view, match(phone="090-1234-5678"))
    assert not discount_rule_matches(view, match(name="山田 太郎"))
