"""Amazon claims and Amazon's replies (issue 12), end to end on the sandbox: zenpy and
python-amazon-sp-api unmodified against the sandbox's Zendesk and SP-API, the clock moved — never
slept.

The claims are set up as the after-sales procedure leaves them (an MCF order's item in the ledger
with its Rakuten order's ticket, and a New claim on it) without driving procedure A through Chromium:
what is under test starts there. Filing is the sandbox's admin call that plays the person in Seller
Central; Amazon then answers on the clock, forwarded into Zendesk at the claims address.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import Sandbox
from robot import Robot, make_robot

from bots import amazon_claims
from bots.amazon_claims import IRRELEVANT_TAG, REPORT_KEY
from kuroko.ledger import (
    Claim,
    ClaimStatus,
    ItemState,
    get_claim,
    list_claims,
    open_claim,
    record_claim_case,
    update_claim,
)
from kuroko.settings import reload_settings
from sandbox.amazon.case_mail import CLAIMS_ADDRESS, REGISTERED_SENDER
from sandbox.process import SandboxAdmin

SKU = "SIM-DATA-30D-20GB"
HOLD_TAG = "kuroko_hold"
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def quick_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox makes a report in two polls: poll at once (wall clock) instead of every 2 s. The
    sandbox's quotas start afresh with each test's world: so does the client's idea of them (its
    per-process usage-plan buckets: createReport is one a minute, 15 at most in a burst)."""
    from services import fulfillment

    monkeypatch.setenv("KUROKO_REPORT_POLL_SECONDS", "0.01")
    monkeypatch.setattr(fulfillment, "_BUCKETS", {})
    for name, value in SandboxAdmin.claims_env().items():  # the claims address and its registered senders
        monkeypatch.setenv(name, value)


@pytest.fixture
def robot(sandbox: Sandbox, settings_env: Path) -> Iterator[Robot]:
    with make_robot(sandbox, procedures=[amazon_claims.procedure]) as robot:
        yield robot


# --- setting up what the after-sales procedure leaves ----------------------------------------------------
def new_claim(robot: Robot, kind: str = "lost") -> tuple[Claim, int]:
    """A Rakuten order's ticket, its MCF order's after-sales item and a New claim on it (as
    bots/mcf_aftercare.py opens it). Returns (claim, the order's ticket)."""
    n = next(_numbers)
    number, mcf_id = f"381234-20261120-{n:08d}", f"R{n:07d}-MCF1"
    ticket = robot.sandbox.post("/admin/mail", {"subject": f"[Rakuten Marketplace] Order Details Confirmation {number}",
                                                "body": f"Order number: {number}"})["ticket_id"]
    now = robot.sandbox.now()
    item = robot.ledger.add_item(procedure="mcf_aftercare", key=mcf_id, ticket_id=ticket, step="finish", due=now,
                                 now=now, facts={"order_number": number, "items": [{"sku": SKU, "quantity": 1}]},
                                 state=ItemState.DONE)
    claim, _ = open_claim(robot.ledger, kind=kind, item_id=item.id, mcf_order_id=mcf_id, package_number=100 + n,
                          text=f"Lost MCF parcel, MCF order id {mcf_id}", now=now)
    return claim, ticket


def file_case(robot: Robot, claim: Claim, *, record: bool = True, **case: Any) -> str:
    """A person files the claim in Seller Central (the sandbox gives a case id) and records it."""
    case_id = str(robot.sandbox.post("/admin/amazon/cases", {"kind": claim.kind, "order_id": claim.mcf_order_id,
                                                             "sku": SKU, **case})["case_id"])
    if record:
        record_claim_case(robot.ledger, claim.id, case_id, now=robot.sandbox.now())
    return case_id


def claims_mail(sandbox: Sandbox, subject: str, body: str, *, sender: tuple[str, str] = REGISTERED_SENDER,
                agent: tuple[str, str] | None = None, recipient: str | None = CLAIMS_ADDRESS) -> int:
    return int(sandbox.post("/admin/mail", {
        "subject": subject, "body": body, "sender_name": sender[0], "sender_email": sender[1], "recipient": recipient,
        **({"forwarded_by_name": agent[0], "forwarded_by_email": agent[1]} if agent else {})})["ticket_id"])


def ticket(sandbox: Sandbox, ticket_id: int) -> dict[str, Any]:
    return next(t for t in sandbox.state()["zendesk"]["tickets"] if t["id"] == ticket_id)


def notes(sandbox: Sandbox, ticket_id: int) -> list[str]:
    return [c["body"] for c in ticket(sandbox, ticket_id)["comments"] if not c["public"]]


def claims_tickets(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [t for t in sandbox.state()["zendesk"]["tickets"] if t.get("recipient") == CLAIMS_ADDRESS]


def claim(robot: Robot, claim_id: int) -> Claim:
    found = get_claim(robot.ledger, claim_id)
    assert found is not None
    return found


def run(robot: Robot, **delta: float) -> None:
    if delta:
        robot.sandbox.advance(**delta)
    robot.run_pass()


# --- 1. reimbursed ------------------------------------------------------------------------------------
def test_a_filed_lost_claim_reimbursed_by_mail_ends_reimbursed_with_its_amount_and_its_ticket_solved(
        robot: Robot, sandbox: Sandbox) -> None:
    lost, order_ticket = new_claim(robot)
    case_id = file_case(robot, lost, answer="pay", amount=1980, answer_after_days=3, language="en", phrasing=0)
    run(robot)
    assert claim(robot, lost.id).status == ClaimStatus.FILED

    run(robot, days=3, hours=1)
    done = claim(robot, lost.id)
    assert done.status == ClaimStatus.REIMBURSED and done.amount_paid == 1980 and done.currency == "JPY"
    forwarded = claims_tickets(sandbox)
    assert len(forwarded) == 1 and forwarded[0]["status"] == "solved", "the forwarded mail is solved"
    assert f"#{order_ticket}" in notes(sandbox, forwarded[0]["id"])[0], "…and names the claim's ticket"
    reply = [n for n in notes(sandbox, order_ticket) if f"reply-{forwarded[0]['id']}]" in n]
    assert len(reply) == 1 and "has been reimbursed" in reply[0] and f"Case ID {case_id}" in reply[0], \
        "Amazon's words are on the claim's ticket"
    assert ticket(sandbox, order_ticket)["status"] == "solved"
    run(robot, hours=13)  # the report read again, another pass: nothing new, the amount not doubled
    assert claim(robot, lost.id).amount_paid == 1980
    assert len([n for n in notes(sandbox, order_ticket) if "reply-" in n]) == 1


# --- 2. the acknowledgement teaches the case id ---------------------------------------------------------
def test_an_agent_forwarded_acknowledgement_naming_our_mcf_order_records_the_case_id(
        robot: Robot, sandbox: Sandbox) -> None:
    lost, order_ticket = new_claim(robot)
    other, _ = new_claim(robot)
    case_id = file_case(robot, lost, record=False, acknowledge=True, answer="silent", forward="agent", language="ja")
    mail = claims_tickets(sandbox)[0]
    assert mail["submitter_id"] != mail["requester_id"], "agent-forwarded: the agent submitted it"
    run(robot)

    filed = claim(robot, lost.id)
    assert filed.case_id == case_id and filed.status == ClaimStatus.FILED
    assert claim(robot, other.id).status == ClaimStatus.NEW and claim(robot, other.id).case_id is None
    assert ticket(sandbox, mail["id"])["status"] == "solved"
    assert any("acknowledged" in n and "ケースを受け付けました" in n for n in notes(sandbox, order_ticket))


def test_a_person_who_lives_in_zendesk_records_the_filing_with_a_tag(robot: Robot, sandbox: Sandbox) -> None:
    from services.helpdesk import ZendeskHelpdesk

    lost, order_ticket = new_claim(robot)
    case_id = file_case(robot, lost, record=False, answer="silent")
    run(robot)
    ZendeskHelpdesk().add_tags(order_ticket, [f"kuroko_claim_{lost.id}_case_{case_id}"])  # the person, in Zendesk
    run(robot, hours=12)
    assert claim(robot, lost.id).case_id == case_id and claim(robot, lost.id).status == ClaimStatus.FILED


# --- 3. Amazon asks for more --------------------------------------------------------------------------------
def test_amazon_asks_for_more_a_person_gets_the_request_and_the_deadline_reminded_at_day_5(
        robot: Robot, sandbox: Sandbox) -> None:
    lost, order_ticket = new_claim(robot)
    file_case(robot, lost, answer="ask_more", answer_after_days=1, language="ja", phrasing=0)
    run(robot, days=1, hours=1)

    asked = claim(robot, lost.id)
    assert asked.status == ClaimStatus.MORE_INFO and asked.more_info_by is not None
    assert (asked.more_info_by - asked.more_info_asked_at).days == 7  # type: ignore[operator]
    note = next(n for n in notes(sandbox, order_ticket) if "asks for more information" in n)
    deadline = asked.more_info_by.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d")
    assert "返金を証明する書類" in note and deadline in note, "Amazon's request and the deadline"
    assert HOLD_TAG in ticket(sandbox, order_ticket)["tags"]
    run(robot, days=4)
    assert not [n for n in notes(sandbox, order_ticket) if n.startswith("Reminder")], "not before day 5"
    run(robot, days=1)
    run(robot, hours=12)
    assert len([n for n in notes(sandbox, order_ticket) if n.startswith("Reminder")]) == 1, "reminded once, at day 5"


# --- 4. silence: nudges, then stalled -----------------------------------------------------------------------
def test_silence_after_filing_asks_a_person_to_nudge_every_4_days_then_flags_it_stalled(
        robot: Robot, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUROKO_CLAIMS_NUDGES", "2")
    reload_settings()  # the claims rules may have been read already in this process (an earlier test)
    lost, order_ticket = new_claim(robot)
    file_case(robot, lost, answer="silent")

    def nudges() -> int:
        return len([n for n in notes(sandbox, order_ticket) if "Needed: nudge the case" in n])

    run(robot, days=3, hours=23)
    assert nudges() == 0
    run(robot, hours=1)
    assert nudges() == 1 and claim(robot, lost.id).nudges == 1
    run(robot, days=2)
    assert nudges() == 1, "once per 4 days"
    run(robot, days=2)
    assert nudges() == 2
    run(robot, days=4)
    assert nudges() == 2 and claim(robot, lost.id).status == ClaimStatus.STALLED
    assert any("flagged Stalled" in n for n in notes(sandbox, order_ticket))


# --- 5. what is not followed --------------------------------------------------------------------------------
def test_closed_claims_reply_changes_nothing_irrelevant_mails_are_solved_tagged_and_kept_buyer_mail_untouched(
        robot: Robot, sandbox: Sandbox) -> None:
    closed, _ = new_claim(robot)
    record_claim_case(robot.ledger, closed.id, "1234567890", now=sandbox.now())
    update_claim(robot.ledger, closed.id, status=ClaimStatus.REIMBURSED.value, amount_paid=1500, currency="JPY")
    late = claims_mail(sandbox, "[Case 1234567890] update", "We have issued a reimbursement of JPY 9999.")
    unregistered = claims_mail(sandbox, "[Case 1234567890] update", "We have issued a reimbursement of JPY 9999.",
                               sender=("Someone", "someone@elsewhere.example"))
    no_case = claims_mail(sandbox, "Your Amazon seller newsletter", "Sell more this winter!")
    not_ours = claims_mail(sandbox, "Case ID 9876543210 updated", "Your case has been opened.")
    spam = claims_mail(sandbox, "WIN A PRIZE", "click here", sender=("Prize", "spam@spam.example"))
    buyer = claims_mail(sandbox, "SIMが届きません", "注文した SIM がまだ届きません。",
                        sender=("購入者", "buyer@example.jp"), recipient=None)
    run(robot)

    after = claim(robot, closed.id)
    assert after.status == ClaimStatus.REIMBURSED and after.amount_paid == 1500
    assert [h["ref"] for h in after.history or [] if h["kind"] == "late_reply"] == [late]
    assert ticket(sandbox, late)["status"] == "solved" and IRRELEVANT_TAG not in ticket(sandbox, late)["tags"]
    for mail, why in ((unregistered, "not registered"), (no_case, "no Amazon case id"), (not_ours, "not one of"),
                      (spam, "not registered")):
        t = ticket(sandbox, mail)
        assert t["status"] == "solved" and IRRELEVANT_TAG in t["tags"], t
        assert len(notes(sandbox, mail)) == 1 and why in notes(sandbox, mail)[0]
    untouched = ticket(sandbox, buyer)
    assert untouched["status"] == "new" and untouched["tags"] == [] and len(untouched["comments"]) == 1
    run(robot)
    assert len(sandbox.state()["zendesk"]["tickets"]) == 7, "nothing deleted, nothing opened"


# --- 6. a phrasing the rules were not written from ------------------------------------------------------------
@pytest.mark.parametrize("words", [
    "Funds for the missing unit were credited to your seller account: ¥1,200.",
    "誠に恐れ入りますが、今回はご期待に沿うことができません。",
])
def test_a_reply_in_an_unknown_phrasing_is_unclear_and_goes_to_a_person(robot: Robot, sandbox: Sandbox,
                                                                        words: str) -> None:
    lost, order_ticket = new_claim(robot)
    case_id = file_case(robot, lost, answer="silent")
    mail = claims_mail(sandbox, f"ケースID：{case_id} について", words)
    run(robot)

    after = claim(robot, lost.id)
    assert after.status == ClaimStatus.WAITING and after.amount_paid is None, "no guessed outcome"
    note = next(n for n in notes(sandbox, order_ticket) if f"reply-{mail}]" in n)
    assert "could not read what Amazon means" in note and words in note
    assert HOLD_TAG in ticket(sandbox, order_ticket)["tags"]
    assert ticket(sandbox, mail)["status"] == "solved"


# --- 7. the reimbursements report ----------------------------------------------------------------------------
def test_the_reimbursements_report_pays_a_claim_without_mail_shows_our_unknown_row_and_ignores_warehouse_rows(
        robot: Robot, sandbox: Sandbox) -> None:
    lost, order_ticket = new_claim(robot)
    ours, _ = new_claim(robot)
    file_case(robot, lost, answer="pay", amount=2400, answer_after_days=1, forward="none")
    sandbox.post("/admin/amazon/reimbursements", {"case_id": "55555555555", "order_id": ours.mcf_order_id, "sku": SKU,
                                                  "amount": 700, "warehouse": 3})
    run(robot, days=1, hours=1)

    paid = claim(robot, lost.id)
    assert paid.status == ClaimStatus.REIMBURSED and paid.amount_paid == 2400
    assert claims_tickets(sandbox) == [], "no mail came"
    assert any("reimbursements report shows" in n for n in notes(sandbox, order_ticket))
    report_item = robot.ledger.find_item(REPORT_KEY, amazon_claims.NAME)
    assert report_item is not None and report_item.handover_ticket_id is not None
    shown = notes(sandbox, report_item.handover_ticket_id)
    assert len(shown) == 1 and "55555555555" in shown[0] and ours.mcf_order_id in shown[0]
    assert claim(robot, ours.id).status == ClaimStatus.NEW, "an unknown row pays no claim by itself"


# --- 8. the filing window ---------------------------------------------------------------------------------------
def test_a_claim_not_filed_gets_its_reminders_before_the_window_ends_then_closes(robot: Robot,
                                                                                 sandbox: Sandbox) -> None:
    lost, order_ticket = new_claim(robot)

    def reminders() -> list[str]:
        return [n for n in notes(sandbox, order_ticket) if "filing window ends" in n]

    run(robot)
    run(robot, days=22)
    assert reminders() == []
    run(robot, days=1, hours=1)
    assert len(reminders()) == 1 and reminders()[0].startswith("Reminder")
    run(robot, days=2)
    assert len(reminders()) == 1
    run(robot, days=4)
    assert len(reminders()) == 2 and reminders()[1].startswith("Last day")
    run(robot, days=1)
    assert claim(robot, lost.id).status == ClaimStatus.CLOSED
    assert any("was not filed within the filing window" in n for n in notes(sandbox, order_ticket))


# --- 9. killed at any side effect ----------------------------------------------------------------------------
class Killed(BaseException):
    """The process dies right after a side effect (nothing after it runs, not even the ledger write)."""


def test_killed_after_any_side_effect_nothing_is_done_twice(sandbox: Sandbox, settings_env: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import kuroko.procedure

    with make_robot(sandbox, procedures=[amazon_claims.procedure]) as setup:
        paid, paid_ticket = new_claim(setup)
        file_case(setup, paid, answer="pay", amount=1980, answer_after_days=1)
        acked, acked_ticket = new_claim(setup)
        file_case(setup, acked, record=False, acknowledge=True, answer="ask_more", answer_after_days=1,
                  forward="agent", language="ja")
        claims_mail(sandbox, "WIN A PRIZE", "click here", sender=("Prize", "spam@spam.example"))
        sandbox.advance(days=1, hours=1)

    done = {"count": 0}
    kill_at = {"n": 1}

    def dying(settings: Any, what: str) -> None:
        done["count"] += 1
        if done["count"] >= kill_at["n"]:
            raise Killed(what)

    monkeypatch.setattr(kuroko.procedure, "side_effect_done", dying)
    kills = 0
    for _ in range(40):
        done["count"] = 0
        with make_robot(sandbox, procedures=[amazon_claims.procedure]) as robot:
            try:
                robot.run_pass()
                robot.run_pass()
                break
            except Killed:
                kills += 1
                for item in robot.ledger.items(procedure=amazon_claims.NAME):
                    if item.lease_owner:
                        robot.ledger.release_lease(item.id, item.lease_owner)
    else:
        raise AssertionError("no pass ever finished")
    assert kills >= 6, kills

    with make_robot(sandbox, procedures=[amazon_claims.procedure]) as robot:
        assert claim(robot, paid.id).status == ClaimStatus.REIMBURSED and claim(robot, paid.id).amount_paid == 1980
        assert claim(robot, acked.id).status == ClaimStatus.MORE_INFO
        for c in (paid, acked):
            refs = [(h["kind"], str(h["ref"])) for h in claim(robot, c.id).history or []]
            assert len(refs) == len(set(refs)), f"claim {c.id}: a history entry twice: {refs}"
    every = sandbox.state()["zendesk"]["tickets"]
    for t in every:
        markers = [line for c in t["comments"] for line in c["body"].splitlines() if line.startswith("[kuroko:")]
        assert len(markers) == len(set(markers)), f"ticket #{t['id']}: a note written twice: {markers}"
    for t in claims_tickets(sandbox):
        assert t["status"] == "solved" and len([c for c in t["comments"] if not c["public"]]) == 1
    assert len([n for n in notes(sandbox, paid_ticket) if "reply-" in n]) == 1
    assert len([n for n in notes(sandbox, acked_ticket) if "reply-" in n]) == 2  # the acknowledgement, the request


# --- 10. kuroko claims, status and the report -------------------------------------------------------------
def test_kuroko_claims_status_and_the_report_show_open_claims_what_they_wait_for_and_money(
        robot: Robot, sandbox: Sandbox, settings_env: Path) -> None:
    waiting, _ = new_claim(robot)
    new, _ = new_claim(robot)
    paid, _ = new_claim(robot)
    case_id = file_case(robot, waiting, record=False, answer="silent")
    result = robot.cli("claim", str(waiting.id), "--case-id", case_id, "--amount", "1980")
    assert result.returncode == 0, result.stderr
    update_claim(robot.ledger, paid.id, status=ClaimStatus.REIMBURSED.value, case_id="12345678901",
                 amount_claimed=3000, amount_paid=2500, currency="JPY")
    run(robot)

    listing = robot.cli("claims")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert f"claim {waiting.id}" in out and "Filed" in out and "Amazon's answer" in out
    assert f"claim {new.id}" in out and "file it in Seller Central" in out
    assert f"claim {paid.id} " not in out.split("Claims:")[0], "closed claims only with --all"
    assert "claimed ¥4,980, paid ¥2,500" in out
    status = robot.cli("status")
    assert status.returncode == 0 and "Claims: 2 open of 3" in status.stdout and "waits for" in status.stdout
    report = settings_env.parent / "report.html"
    assert robot.cli("report", "-o", str(report)).returncode == 0
    html = report.read_text(encoding="utf-8")
    assert "Claims: 2 open of 3" in html and "claimed ¥4,980, paid ¥2,500" in html


# --- the whole way: a parcel lost on the MCF path, its claim followed to its money --------------------------
def test_the_whole_way_a_lost_mcf_parcel_claimed_filed_and_paid_by_a_japanese_mail(
        sandbox: Sandbox, settings_env: Path) -> None:
    """Procedure A (a real Chromium on BOSS and RMS) creates the MCF order, the after-sales procedure
    finds the parcel lost and opens the claim, the person files it, Amazon pays by mail."""
    from datetime import timedelta

    from test_mcf_aftercare import DATA_SIM, drive, edd, mcf_order, until_day

    with make_robot(sandbox) as robot:
        number, mcf_id = mcf_order(robot, sandbox, [DATA_SIM], fate="lost")
        drive(robot, sandbox, days=2, every_hours=24)
        until_day(robot, sandbox, edd(robot, mcf_id) + timedelta(days=8), hour=18, every_hours=48)
        robot.run_pass()
        [lost] = list_claims(robot.ledger)
        item = robot.ledger.find_item(f"claim-{lost.id}", amazon_claims.NAME)
        assert item is not None and lost.status == ClaimStatus.NEW
        case_id = file_case(robot, lost, record=False, answer="pay", amount=2980, answer_after_days=2,
                            language="ja", phrasing=1)
        assert robot.cli("claim", str(lost.id), "--case-id", case_id, "--amount", "2980").returncode == 0
        run(robot, days=2, hours=1)

        paid = claim(robot, lost.id)
        assert paid.status == ClaimStatus.REIMBURSED and paid.amount_paid == 2980 and paid.amount_claimed == 2980
        claim_ticket = robot.ledger.find_item(f"claim-{lost.id}", amazon_claims.NAME)
        assert claim_ticket is not None
        where = claim_ticket.handover_ticket_id or claim_ticket.ticket_id
        assert where is not None and any("補てんを行いました" in n for n in notes(sandbox, where))
        assert ticket(sandbox, where)["status"] == "solved"
        assert robot.order(number).state == "done", "procedure A finished its order long before"
