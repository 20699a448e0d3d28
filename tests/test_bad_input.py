"""Bad input: tickets the robot cannot trust, pages that show another order, values it has no rule
for. Each gets a clear internal note and a held order — nothing clicked on a doubtful order — or,
where the value is only written differently (a tracking number in full-width digits), it is
normalised and accepted.

Why full-width tracking numbers are accepted: SPEC A step 8 has the robot type the carrier's
tracking number into RMS (④ and お荷物伝票番号); RMS takes half-width letters, digits and hyphens
only (the sandbox refuses anything else, as the real one does). ＮＦＫＣ maps full-width digits to
the same digits, so nothing is guessed: the number is the same parcel's. Anything that is still not
a plausible tracking number after that is refused (``kuroko ship`` says so; from Amazon it is held).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import Sandbox
from robot import ODC, Robot, internal_notes, make_robot, mcf_orders, primary_ticket, side_effects, tickets

from bots.rakuten_sim_order import rules
from services.helpdesk import HELPDESK

DATA_SIM = "SIM-DATA-30D-20GB"
VOICE_SIM = "SIM-VOICE-30D"  # FBA has none: an office shipment
NO_SUCH_ORDER = "381234-20261120-9999999999"


@pytest.fixture
def robot(sandbox: Sandbox, settings_env: Path) -> Iterator[Robot]:
    with make_robot(sandbox) as robot:
        yield robot


# --- helpers ------------------------------------------------------------------------------------
def order_mail(number: str, link: str | None) -> str:
    """An Order Details Confirmation mail as Rakuten writes it."""
    lines = ["山田 太郎 様", "", "この度は楽天市場でのご注文、誠にありがとうございます。", "",
             "[Order Details Confirmation]", f"[受注番号] {number}", "[日時] 2026-11-20 09:00:00", ""]
    if link is not None:
        lines += ["ご注文内容は購入履歴からご確認いただけます。", f"Purchase History: {link}"]
    return "\n".join(lines)


def post_mail(sandbox: Sandbox, body: str) -> int:
    return int(sandbox.post("/admin/mail", {"subject": ODC, "body": body})["ticket_id"])


def ticket(sandbox: Sandbox, ticket_id: int) -> dict[str, Any]:
    return next(t for t in tickets(sandbox) if t["id"] == ticket_id)


def rms_link(sandbox: Sandbox, number: str) -> str:
    return f"{sandbox.urls['rms']}/rms/order/{number}"


def own_ticket_solved(robot: Robot, sandbox: Sandbox, number: str) -> None:
    """Take the order's genuine mail out of the robot's way, so that only the doubtful one names it."""
    for t in tickets(sandbox):
        if t["subject"] == ODC and t["comments"] and number in t["comments"][0]["body"]:
            robot.connections.use(HELPDESK).set_status(t["id"], "solved")


def requests_to(sandbox: Sandbox, system: str) -> int:
    return int(sandbox.summary()["request_counts"][system])


NEW_LEDGER_LISTING = 2
"""A new ledger's first pass lists Amazon's MCF orders once (a token, one page: the after-sales
rebuild, bots/mcf_aftercare.py ``rebuild_from_amazon``), then not again for a day; nothing about
the order in the test."""


def robot_notes_on(sandbox: Sandbox, ticket_id: int) -> list[str]:
    return internal_notes(ticket(sandbox, ticket_id))


def hold_notes_on(sandbox: Sandbox, ticket_id: int) -> list[str]:
    """The robot's hand-over notes (marker ``[kuroko:…:hold-N]`` or ``[kuroko:…:unreadable]``)."""
    return [n for n in robot_notes_on(sandbox, ticket_id) if ":hold-" in n or ":unreadable]" in n]


def assert_held(robot: Robot, sandbox: Sandbox, number: str, ticket_id: int, *, code: str, says: str) -> str:
    """Held with ``code``; the ticket has one hold note saying ``says``, the hold tag, status open."""
    order = robot.order(number)
    assert order.state == "held", f"{number}: {order.state} at {order.step}"
    assert order.hold_code == code, order.hold_reason
    found = ticket(sandbox, ticket_id)
    notes = hold_notes_on(sandbox, ticket_id)
    assert len(notes) == 1, notes
    assert says in notes[0], notes[0]
    assert found["status"] == "open" and robot.settings.hold_tag in found["tags"]
    return notes[0]


def untouched(sandbox: Sandbox, *numbers: str) -> None:
    """Nothing was clicked on these orders in RMS or BOSS, and Amazon ships nothing."""
    for number in numbers:
        world = sandbox.order(number)
        assert world["confirm_clicks"] == 0 and world["mails"] == [], number
        assert world["boss_state"] == "Confirmation to be", number
        assert world["shipping"]["tracking_number"] is None
    clicks = [e for e in side_effects(sandbox) if e["system"] in ("rms", "boss")]
    assert clicks == []
    assert mcf_orders(sandbox) == []


@contextmanager
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """A tiny web server on 127.0.0.1 that writes down every request it gets."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write("<h1>受注詳細</h1>".encode())

        def do_POST(self) -> None:
            seen.append(f"POST {self.path}")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def until_shipped(robot: Robot, sandbox: Sandbox) -> None:
    """Move the clock a day at a time until Amazon has shipped every MCF order, then run a pass."""
    for _ in range(6):
        if all(o["packages"] for o in mcf_orders(sandbox)):
            break
        sandbox.advance(days=1)
    assert all(o["packages"] for o in mcf_orders(sandbox)), "Amazon never shipped"
    robot.run_pass()


# --- tickets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "says"), [
    ("ご注文ありがとうございます。\n[受注番号] （空欄）", "no Rakuten order number"),
    (order_mail("381234-20261120-1111111111", None) + "\n[受注番号] 381234-20261120-2222222222",
     "2 different order numbers: 381234-20261120-1111111111, 381234-20261120-2222222222"),
    (order_mail("381234-2026112-111111111", None), "not in Rakuten's form"),
    (order_mail("381234-20261340-1234567890", None), "carries no valid date"),
    ("<p>[受注番号] 381234-20261120-3333333333</p><script>fetch('http://127.0.0.1:9/steal')</script>",
     "script or other active HTML (script)"),
], ids=["no-number", "two-numbers", "malformed", "impossible-date", "script"])
def test_a_ticket_the_robot_cannot_read_is_held_with_the_reason(robot: Robot, sandbox: Sandbox,
                                                                body: str, says: str) -> None:
    ticket_id = post_mail(sandbox, body)
    robot.run_pass()
    note = assert_held(robot, sandbox, f"ticket-{ticket_id}", ticket_id, code="unreadable_ticket", says=says)
    assert "Nothing was done in BOSS, RMS or Amazon" in note and "Needed:" in note
    assert "<script" not in note and "fetch(" not in note, "the mail's markup is not repeated"
    assert requests_to(sandbox, "boss") == requests_to(sandbox, "rms") == 0
    assert requests_to(sandbox, "spapi") == NEW_LEDGER_LISTING, "Amazon never asked about the order"
    assert [e["system"] for e in side_effects(sandbox)] == ["zendesk"], "the note, nothing else"

    sandbox.advance(hours=1)
    robot.run_pass()
    assert len(robot_notes_on(sandbox, ticket_id)) == 1, "held: the note is not written again"
    assert robot.order(f"ticket-{ticket_id}").state == "held"


def test_html_formatting_in_a_genuine_mail_is_read_as_text(robot: Robot, sandbox: Sandbox) -> None:
    sandbox.set_stock(rsl={DATA_SIM: 1})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    own_ticket_solved(robot, sandbox, number)
    link = rms_link(sandbox, number)
    html_mail = (f"<p>山田 太郎 様</p><p>[受注番号]&nbsp;<b>{number}</b><br></p>"
                 f"<p>Purchase History: <a href=\"{link}\">{link}</a></p>")
    ticket_id = post_mail(sandbox, html_mail)
    robot.run_pass()
    order = robot.order(number)
    assert order.ticket_id == ticket_id and order.facts["purchase_history_url"] == link
    sandbox.advance(minutes=31)
    robot.run_pass()
    assert robot.order(number).state == "done"
    assert ticket(sandbox, ticket_id)["status"] == "solved"
    assert [n.splitlines()[0] for n in robot_notes_on(sandbox, ticket_id)] == ["Boss in progress"]


def test_an_order_number_rakuten_does_not_know_waits_for_boss_then_is_held(robot: Robot, sandbox: Sandbox) -> None:
    ticket_id = post_mail(sandbox, order_mail(NO_SUCH_ORDER, rms_link(sandbox, NO_SUCH_ORDER)))
    robot.run_pass()
    assert robot.order(NO_SUCH_ORDER).state == "active", "BOSS may list an order a little after its mail"
    sandbox.advance(minutes=60)
    robot.run_pass()
    assert robot.order(NO_SUCH_ORDER).state == "active"
    sandbox.advance(minutes=61)  # past KUROKO_BOSS_MISSING_WAIT_MINUTES (120)
    robot.run_pass()
    note = assert_held(robot, sandbox, NO_SUCH_ORDER, ticket_id, code="order_not_in_boss",
                       says="has not been on the BOSS order list")
    assert "Find the order in BOSS by hand" in note
    assert requests_to(sandbox, "rms") == 0, "RMS never asked"
    assert requests_to(sandbox, "spapi") == NEW_LEDGER_LISTING, "Amazon never asked about the order"
    assert [e["system"] for e in side_effects(sandbox)] == ["zendesk"]


# --- links and pages --------------------------------------------------------------------------------
@pytest.mark.parametrize("trick", ["other-host", "rms-as-user-name"])
def test_a_purchase_history_link_to_another_host_is_never_followed(robot: Robot, sandbox: Sandbox,
                                                                   trick: str) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    own_ticket_solved(robot, sandbox, number)
    with recording_server() as (other, seen):
        host = urlsplit(other).netloc
        link = {"other-host": f"{other}/rms/order/{number}",
                "rms-as-user-name": f"http://{urlsplit(sandbox.urls['rms']).netloc}@{host}/rms/order/{number}"}[trick]
        ticket_id = post_mail(sandbox, order_mail(number, link))
        sandbox.advance(minutes=31)
        robot.run_pass()
        robot.run_pass()
        assert seen == [], f"the robot followed the link: {seen}"
    note = assert_held(robot, sandbox, number, ticket_id, code="unsafe_link", says="it was not opened")
    assert "is not on the configured RMS" in note
    assert requests_to(sandbox, "rms") == 0
    untouched(sandbox, number)


@pytest.mark.parametrize(("target", "encoded"), [
    ("another-order", False), ("another-order", True), ("no-such-order", True),
], ids=["link-names-another-order", "page-shows-another-order", "page-not-found"])
def test_a_link_to_another_rms_order_is_held_and_nothing_is_clicked(robot: Robot, sandbox: Sandbox,
                                                                   target: str, encoded: bool) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    other = sandbox.place_order([DATA_SIM])["order_number"] if target == "another-order" else NO_SUCH_ORDER
    own_ticket_solved(robot, sandbox, number)
    own_ticket_solved(robot, sandbox, other)
    # Percent-encoded, the other number is not in the ticket's text: only the RMS page can tell.
    link = rms_link(sandbox, other.replace("-", "%2D") if encoded else other)
    ticket_id = post_mail(sandbox, order_mail(number, link))
    sandbox.advance(minutes=31)
    robot.run_pass()
    if not encoded:  # the ticket itself names two orders: refused at intake
        assert_held(robot, sandbox, f"ticket-{ticket_id}", ticket_id, code="unreadable_ticket",
                    says="2 different order numbers")
        assert robot.ledger.find_item(number) is None
        assert requests_to(sandbox, "rms") == 0
    elif target == "another-order":
        note = assert_held(robot, sandbox, number, ticket_id, code="order_mismatch", says=f"shows {other}")
        assert number in note and robot.order(number).step == "verify_physical_sim"
    else:
        note = assert_held(robot, sandbox, number, ticket_id, code="order_mismatch", says="受注が見つかりません")
        assert robot.order(number).step == "verify_physical_sim"
    untouched(sandbox, *([number, other] if target == "another-order" else [number]))
    robot.run_pass()
    assert len(robot_notes_on(sandbox, ticket_id)) == 1, "held: nothing more happens"


# --- tracking numbers, carriers and statuses -----------------------------------------------------------
def shipping_mails(sandbox: Sandbox, number: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.order(number)["mails"] if m["template"].startswith("発送メール")]


def test_office_tracking_number_in_full_width_digits_is_normalised_and_junk_refused(
        robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([VOICE_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    assert robot.order(number).path == "office"

    junk = robot.cli("ship", number, "--carrier", "ヤマト運輸", "--tracking", "１２３あいう４５６")
    assert junk.returncode != 0 and "not a plausible tracking number" in " ".join(junk.stderr.split())
    assert "tracking_number" not in robot.order(number).facts
    robot.run_pass()
    assert shipping_mails(sandbox, number) == []

    given = robot.cli("ship", number, "--carrier", "ヤマト運輸", "--tracking", "４４７１　２０３３　５１００")
    assert given.returncode == 0, given.stderr
    robot.run_pass()
    (mail,) = shipping_mails(sandbox, number)
    assert mail["fields"]["tracking_number"] == "447120335100"
    shipping = sandbox.order(number)["shipping"]
    assert (shipping["company"], shipping["tracking_number"]) == ("ヤマト運輸", "447120335100")


def test_mcf_tracking_number_in_full_width_digits_is_normalised(robot: Robot, sandbox: Sandbox) -> None:
    sandbox.post("/admin/amazon/carrier", {"carrier_code": "YAMATO", "tracking_number": "４４７１－２０３３－５１０６"})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    until_shipped(robot, sandbox)
    assert mcf_orders(sandbox)[0]["packages"][0]["tracking_number"] == "４４７１－２０３３－５１０６"
    (mail,) = shipping_mails(sandbox, number)
    assert mail["fields"]["tracking_number"] == "4471-2033-5106"
    assert mail["fields"]["carrier"] == "ヤマト運輸"
    assert sandbox.order(number)["shipping"]["tracking_number"] == "4471-2033-5106"


def test_an_unknown_carrier_code_is_held_until_mapped_then_goes_on_once(
        sandbox: Sandbox, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.post("/admin/amazon/carrier", {"carrier_code": "ACME_EXPRESS"})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    with make_robot(sandbox) as robot:
        robot.run_pass()
        until_shipped(robot, sandbox)
        note = assert_held(robot, sandbox, number, primary_ticket(sandbox, number)["id"], code="unknown_value",
                           says="'ACME_EXPRESS' has no RMS shipping company in KUROKO_CARRIER_MAP")
        assert robot.order(number).step == "wait_for_tracking"
        assert "Needed:" in note
        assert shipping_mails(sandbox, number) == []
        assert sandbox.order(number)["shipping"]["tracking_number"] is None
        sandbox.advance(days=1)
        robot.run_pass()
        assert robot.order(number).state == "held" and shipping_mails(sandbox, number) == []

    # A person adds the carrier to the configuration and removes the hold tag in Zendesk.
    carriers = {**rules().carrier_map, "ACME_EXPRESS": "その他"}
    monkeypatch.setenv("KUROKO_CARRIER_MAP", json.dumps(carriers, ensure_ascii=False))
    with make_robot(sandbox) as robot:
        robot.connections.use(HELPDESK).remove_tags(primary_ticket(sandbox, number)["id"],
                                                    [robot.settings.hold_tag])
        robot.run_pass()
        assert robot.order(number).state == "active"
    (mail,) = shipping_mails(sandbox, number)
    assert mail["fields"]["carrier"] == "その他"
    assert sandbox.order(number)["shipping"]["company"] == "その他"


def test_an_mcf_status_with_no_rule_is_held_and_nothing_is_sent(robot: Robot, sandbox: Sandbox) -> None:
    number = sandbox.place_order([DATA_SIM])["order_number"]
    sandbox.advance(minutes=31)
    robot.run_pass()
    (mcf,) = mcf_orders(sandbox)
    sandbox.post(f"/admin/amazon/fulfillment-orders/{mcf['seller_fulfillment_order_id']}/status",
                 {"status": "OnHoldForReview"})
    sandbox.advance(hours=3)
    robot.run_pass()
    note = assert_held(robot, sandbox, number, primary_ticket(sandbox, number)["id"], code="unknown_value",
                       says="'OnHoldForReview', a status the robot has no rule for")
    assert "Seller Central" in note
    until_shipped(robot, sandbox)  # Amazon ships it anyway: the held order still sends nothing
    assert shipping_mails(sandbox, number) == []
    assert robot.order(number).state == "held"


# --- late mails -------------------------------------------------------------------------------------
def test_a_late_mail_for_an_order_whose_ticket_is_closed_goes_to_a_person_and_intake_goes_on(
        robot: Robot, sandbox: Sandbox) -> None:
    """Zendesk closes solved tickets after some days and cannot merge into a closed ticket. A mail
    for such an order used to fail the whole intake at every pass, keeping every new order out."""
    sandbox.set_stock(rsl={DATA_SIM: 2})
    number = sandbox.place_order([DATA_SIM])["order_number"]
    robot.run_pass()
    sandbox.advance(minutes=31)
    robot.run_pass()
    first = primary_ticket(sandbox, number)
    assert robot.order(number).state == "done" and first["status"] == "solved"
    sandbox.advance(days=5)
    assert ticket(sandbox, first["id"])["status"] == "closed", "Zendesk closed the solved ticket"

    late = post_mail(sandbox, order_mail(number, rms_link(sandbox, number)))
    newcomer = sandbox.place_order([DATA_SIM])["order_number"]
    report = robot.run_pass()

    assert report.intake_error is None, report.intake_error
    assert robot.order(newcomer).state == "active", "the new order was taken in all the same"
    (note,) = robot_notes_on(sandbox, late)
    assert f"ticket #{first['id']} is closed" in note and "Kuroko's record of this order: finished" in note
    assert "Needed:" in note
    found = ticket(sandbox, late)
    assert found["status"] == "open" and robot.settings.hold_tag in found["tags"]
    assert robot.order(number).state == "done", "the finished order is not started again"
    assert not [e for e in side_effects(sandbox) if e["system"] in ("rms", "boss")]

    sandbox.advance(hours=1)
    report = robot.run_pass()
    assert report.intake_error is None
    assert len(robot_notes_on(sandbox, late)) == 1, "the late mail is handed over once"
