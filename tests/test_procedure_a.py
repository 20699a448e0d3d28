"""Procedure A end to end: a real Chromium on the sandbox's BOSS and RMS, zenpy and
python-amazon-sp-api on its APIs, the clock moved instead of waited for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Sandbox
from robot import (
    OC,
    ODC,
    Robot,
    internal_notes,
    make_robot,
    mcf_orders,
    primary_ticket,
    side_effects,
    tickets,
    tickets_of,
)

from bots.rakuten_sim_order import rules

DATA_SIM = "SIM-DATA-30D-20GB"
VOICE_SIM = "SIM-VOICE-30D"  # FBA has none of it in the 'stocked' world: MCF cannot ship
ESIM = "ESIM-DATA-30D-20GB"


@pytest.fixture
def robot(sandbox: Sandbox, settings_env: Path) -> Iterator[Robot]:
    with make_robot(sandbox) as robot:
        yield robot


def robot_actions(sandbox: Sandbox, order_number: str) -> Counter[tuple[str, str]]:
    return Counter((e["system"], e["action"]) for e in side_effects(sandbox)
                   if e.get("order_number") == order_number)


def ship_and_complete(robot: Robot, sandbox: Sandbox) -> None:
    """Move the clock through Amazon's shipping and RMS's next-day completion."""
    for _ in range(4):
        sandbox.advance(days=1)
        robot.run_pass()


def test_in_stock_at_rsl_is_noted_solved_and_merged(robot: Robot, sandbox: Sandbox) -> None:
    sandbox.set_stock(rsl={DATA_SIM: 1})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    robot.run_pass()
    assert robot.order(number).state == "active"  # Confirmation to be, < 30 min: nothing yet
    assert side_effects(sandbox) == []

    sandbox.advance(minutes=31)  # RSL confirms; Rakuten's second mail arrives
    robot.run_pass()

    first = primary_ticket(sandbox, number)
    assert first["subject"] == ODC
    assert first["status"] == "solved"
    notes = internal_notes(first)
    assert len(notes) == 1 and notes[0].startswith("Boss in progress")
    second = next(t for t in tickets_of(sandbox, number) if t["subject"] == OC)
    assert second["status"] == "closed", "the Order Confirmation ticket is merged into the first"
    actions = robot_actions(sandbox, number)
    assert not any(system in ("rms", "boss") for system, _ in actions), "nothing touched in RMS or BOSS"
    assert mcf_orders(sandbox) == []
    assert robot.order(number).path == "in_stock" and robot.order(number).state == "done"


def test_no_stock_mcf_within_two_days_end_to_end(robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()

    world = sandbox.order(number)
    assert world["confirm_clicks"] == 1
    assert [m["template"] for m in world["mails"]] == ["サンクスメール"]
    assert world["boss_state"] == "Deleted"
    assert "Cancelled" not in world["boss_history"]
    assert len(mcf_orders(sandbox)) == 1
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "open"
    fba_notes = [n for n in internal_notes(ticket) if "FBA information" in n]
    assert len(fba_notes) == 1 and "@" not in fba_notes[0].split("Thank You")[0]

    ship_and_complete(robot, sandbox)

    world = sandbox.order(number)
    shipping = [m for m in world["mails"] if m["template"].startswith("発送メール")]
    assert len(shipping) == 1
    package = mcf_orders(sandbox)[0]["packages"][0]
    fields = shipping[0]["fields"]
    assert fields["order_number"] == number
    assert fields["tracking_number"] == package["tracking_number"]
    assert fields["carrier"] == rules().carrier_map[package["carrier_code"]]
    assert fields["ship_date"]
    assert world["shipping"]["tracking_number"] == package["tracking_number"]
    assert world["shipping"]["company"] == fields["carrier"]
    assert world["rms_status"] == "完了"
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "solved"
    assert sum("Shipment completion confirmed" in n for n in internal_notes(ticket)) == 1
    assert robot.order(number).state == "done" and robot.order(number).path == "mcf"
    # Exactly once each, over the whole life of the order.
    assert sandbox.order(number)["confirm_clicks"] == 1
    assert len(mcf_orders(sandbox)) == 1
    assert all(t["status"] in ("solved", "closed") for t in tickets_of(sandbox, number))


def test_the_completion_leaves_a_ticket_a_person_has_work_on_open(robot: Robot, sandbox: Sandbox) -> None:
    """Another item's hand-over (the after-sales' late parcel, a claim) tagged the order's ticket
    before RMS showed the order complete: the completion note is written, but the ticket is not
    solved over that person's note."""
    from kuroko.settings import get_settings
    from services.helpdesk import ZendeskHelpdesk

    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    ticket = primary_ticket(sandbox, number)
    hold_tag = get_settings().hold_tag
    ZendeskHelpdesk().add_tags(ticket["id"], [hold_tag])

    ship_and_complete(robot, sandbox)

    assert robot.order(number).state == "done" and robot.order(number).path == "mcf"
    ticket = primary_ticket(sandbox, number)
    assert sum("Shipment completion confirmed" in n for n in internal_notes(ticket)) == 1
    assert ticket["status"] != "solved" and hold_tag in ticket["tags"], "the person's ticket stays in sight"


def test_no_stock_mcf_slower_than_two_days_mentions_the_japan_office(robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([DATA_SIM], remote=True)["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    ticket = primary_ticket(sandbox, number)
    note = next(n for n in internal_notes(ticket) if "FBA information" in n)
    assert note.startswith("@" + rules().japan_office_staff)
    assert ticket["status"] == "open"
    assert len(mcf_orders(sandbox)) == 1
    assert sandbox.order(number)["boss_state"] == "Deleted"


def test_mcf_cannot_ship_becomes_an_office_shipment(robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([VOICE_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    assert mcf_orders(sandbox) == []
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "open"
    assert any("shipped from the office" in n for n in internal_notes(ticket))
    assert sandbox.order(number)["boss_state"] == "Deleted"
    assert robot.order(number).path == "office"

    sandbox.advance(hours=3)
    robot.run_pass()
    assert [m["template"] for m in sandbox.order(number)["mails"]] == ["サンクスメール"], "waits for the person"

    result = robot.cli("ship", number, "--carrier", "日本郵便", "--tracking", "１２３４−５６７８−９０１２")
    assert result.returncode == 0, result.stderr
    robot.run_pass()
    world = sandbox.order(number)
    shipping = [m for m in world["mails"] if m["template"].startswith("発送メール")]
    assert len(shipping) == 1
    assert shipping[0]["fields"]["tracking_number"] == "1234-5678-9012"
    assert world["shipping"]["company"] == "日本郵便"
    sandbox.advance(days=1)
    robot.run_pass()
    assert primary_ticket(sandbox, number)["status"] == "solved"
    assert mcf_orders(sandbox) == []


@pytest.mark.parametrize("skus", [[ESIM], [DATA_SIM, ESIM]], ids=["esim", "mixed"])
def test_esim_and_mixed_orders_go_to_a_person_untouched(robot: Robot, sandbox: Sandbox, skus: list[str]) -> None:
    number = sandbox.place_order(skus)["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    order = robot.order(number)
    assert order.state == "held" and order.hold_code == "not_physical_sim"
    world = sandbox.order(number)
    assert world["confirm_clicks"] == 0 and world["mails"] == []
    assert world["boss_state"] == "Confirmation to be"
    assert mcf_orders(sandbox) == []
    ticket = primary_ticket(sandbox, number)
    assert ticket["status"] == "open" and robot.settings.hold_tag in ticket["tags"]
    note = internal_notes(ticket)[-1]
    assert "eSIM" in note and "Needed:" in note

    robot.run_pass()
    assert len(internal_notes(primary_ticket(sandbox, number))) == 1, "held: nothing more happens"


def test_order_missing_in_boss_is_looked_at_again_then_handed_over(robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([DATA_SIM], boss_listed=False)["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    assert robot.order(number).state == "active"
    sandbox.advance(minutes=60)
    robot.run_pass()
    assert robot.order(number).state == "active"
    sandbox.advance(minutes=61)
    robot.run_pass()
    order = robot.order(number)
    assert order.state == "held" and order.hold_code == "order_not_in_boss"
    assert sandbox.order(number)["confirm_clicks"] == 0
    assert "BOSS" in internal_notes(primary_ticket(sandbox, number))[-1]


def test_unreadable_ticket_is_handed_over_and_others_go_on(robot: Robot, sandbox: Sandbox) -> None:
    bad = sandbox.post("/admin/mail", {"subject": ODC, "body": "ご注文ありがとうございます。[受注番号] （空欄）"})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    held = robot.order(f"ticket-{bad['ticket_id']}")
    assert held.state == "held" and held.hold_code == "unreadable_ticket"
    bad_ticket = next(t for t in tickets(sandbox) if t["id"] == bad["ticket_id"])
    assert robot.settings.hold_tag in bad_ticket["tags"]
    assert "no Rakuten order number" in internal_notes(bad_ticket)[-1]
    assert sandbox.order(number)["boss_state"] == "Deleted", "the good order went on"


def test_thirty_minute_rule(robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=29)
    robot.run_pass()
    assert sandbox.order(number)["confirm_clicks"] == 0
    assert side_effects(sandbox) == []
    sandbox.advance(minutes=1)
    robot.run_pass()
    assert sandbox.order(number)["confirm_clicks"] == 1


def test_the_same_pass_twice_changes_nothing(robot: Robot, sandbox: Sandbox) -> None:
    sandbox.set_stock(rsl={DATA_SIM: 1})
    sandbox.place_order([DATA_SIM])
    sandbox.place_order([DATA_SIM])
    sandbox.place_order([ESIM])
    sandbox.advance(minutes=31)
    robot.run_pass()
    before = side_effects(sandbox)
    robot.run_pass()
    assert side_effects(sandbox) == before


def test_dry_run_touches_nothing_and_says_what_it_would_do(sandbox: Sandbox, settings_env: Path) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.set_stock(rsl={DATA_SIM: 1})
    stocked = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.place_order([ESIM])
    sandbox.advance(minutes=31)
    before_tickets = tickets(sandbox)
    with make_robot(sandbox, dry_run=True) as robot:
        report = robot.run_pass()
    assert side_effects(sandbox) == []
    assert mcf_orders(sandbox) == []
    assert tickets(sandbox) == before_tickets
    said = "\n".join(report.actions)
    assert f"{number}: would confirm_order on rms" in said
    assert f"{number}: would create_mcf_order on amazon" in said
    assert f"{stocked}: would note_in_stock on zendesk" in said
    assert "would hand_to_person" in said
    with make_robot(sandbox) as robot:
        assert robot.ledger.items() == [], "the dry run wrote nothing to the ledger"
