"""Amazon claims and Amazon's replies: every lost or damaged MCF parcel followed to its money
(docs/procedures/amazon_claims.md; SPEC section C; seed 004).

The after-sales procedure (bots/mcf_aftercare.py) opens the claims (status New) and asks a person to
file each in Seller Central. From then on this procedure follows each one:

- one work item per claim (key ``claim-<id>``, the claim's ticket: the order's, or the engine's
  follow-up ticket when Zendesk closed it), whose step ``follow`` keeps the claim's deadlines on the
  clock: the filing window (reminders 7 days before it ends and on its last day), the nudges (Filed
  and silent 4 days → a person nudges the case, every 4 days up to a count, then Stalled), Amazon's
  request for more (7 days, reminded at day 5);
- the intake reads the tickets received at the claims address (``KUROKO_CLAIMS_RECIPIENT``,
  Zendesk's ``recipient``), and only those: a registered sender's mail whose subject names the case
  id of an open claim is attached (Amazon's words in an internal note on the claim's ticket, the
  forwarded ticket solved with a note naming that ticket) and its meaning moves the claim; an
  acknowledgement naming one of our MCF orders or Rakuten orders with a New claim teaches the case
  id; a reply to a closed claim is recorded on it and changes nothing; anything else is solved at
  once with the tag ``kuroko_irrelevant`` and a one-line note — never deleted;
- one more item (``reimbursements-report``) reads Amazon's reimbursements report on its own
  schedule: a row with the case id of one of our claims marks it paid (even when no mail came); a
  row of one of our MCF orders (or SKUs) with a case id we do not know goes to a person; Amazon's
  own warehouse rows are ignored.

The sender of a forwarded mail, as Zendesk records it: for a mail a mailbox forwarded by itself
(auto-forwarding) the ticket's ``via.source.from.address``; for a mail an agent forwarded (Zendesk
agent forwarding, where the requester becomes the original sender Zendesk read out of the mail) the
ticket's submitter, the agent who forwarded it.

Every side effect goes through ``ctx.act`` / the hand-over (the one door); every note carries its
marker and every reply and report row is written in the claim's history first, so a run stopped
anywhere repeats nothing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from kuroko.errors import KurokoError
from kuroko.handover import HandOver, marker
from kuroko.ledger import (
    CLOSED_CLAIM_STATUSES,
    OPEN_CLAIM_STATUSES,
    Claim,
    ClaimStatus,
    WorkItem,
    find_claim_by_case,
    get_claim,
    list_claims,
    money,
    record_claim_case,
    update_claim,
)
from kuroko.procedure import DeskContext, Done, IntakeContext, NotYet, Outcome, Procedure, StepContext
from kuroko.settings import KurokoSettings, load
from services.fulfillment import FULFILLMENT
from services.helpdesk import HELPDESK, ClaimsAddress

if TYPE_CHECKING:
    from kuroko.ledger import Ledger
    from kuroko.procedure import Effects
    from services.fulfillment import ReimbursementRow
    from services.helpdesk import Helpdesk, TicketView

NAME = "amazon_claims"
REPORT_KEY = "reimbursements-report"
IRRELEVANT_TAG = "kuroko_irrelevant"
AFTERCARE = "mcf_aftercare"


class ClaimsRules(KurokoSettings):
    """The claims procedure's rules (KUROKO_CLAIMS_* settings). The claims address itself is
    ``KUROKO_CLAIMS_RECIPIENT`` (services/helpdesk.py: every procedure must know it to leave it alone)."""

    claims_senders: str = ""
    """Registered senders, comma-separated: the only addresses whose forwarded mails are read."""
    claims_filing_window_days: float = 30
    """A New claim must be filed within this many days after it became eligible."""
    claims_filing_reminder_days: float = 7
    """The first filing reminder, this many days before the window ends (the second: its last day)."""
    claims_nudge_days: float = 4
    """Filed (or answered) and no word from Amazon for this long → a person nudges the case."""
    claims_nudges: int = 3
    """Nudges before the claim is flagged Stalled."""
    claims_more_info_days: float = 7
    """Amazon asked for more: the days to answer (unless Amazon's mail names its own)."""
    claims_more_info_reminder_days: float = 5
    claims_tag_hours: float = 12
    """How often a New claim's ticket is looked at for the filing tag ``kuroko_claim_<id>_case_<case id>``."""
    claims_report_hours: float = 12
    """How often the reimbursements report is read."""
    claims_report_days: int = 60
    """How far back each reading of the report looks."""

    def senders(self) -> set[str]:
        return {s.strip().casefold() for s in self.claims_senders.split(",") if s.strip()}


def rules() -> ClaimsRules:
    return load(ClaimsRules)


procedure = Procedure(NAME, title="Amazon claims", item_label="Amazon claim", desk=HELPDESK)


# --- reading Amazon's mails ------------------------------------------------------------------------
CASE_ID = re.compile(r"(?:\bcase|ケース)\s*(?:id)?\s*(?:no\.?|番号)?\s*[:#\-]?\s*(?<!\d)(\d{10,11})(?!\d)",
                     re.IGNORECASE)

MEANINGS: dict[str, tuple[str, ...]] = {
    "paid": (
        r"\b(?:has|have) been reimbursed\b", r"\bwe have issued a reimbursement\b", r"\bwe have reimbursed you\b",
        r"\breimbursement (?:has been|was) (?:issued|approved|processed)\b",
        "補てんいたしました", "補填いたしました", "補てんを行いました", "補填を行いました",
        "払い戻しを完了いたしました", "払い戻しいたしました",
    ),
    "refused": (
        r"\bnot eligible for (?:a )?reimbursement\b", r"\bunable to reimburse\b", r"\bcannot reimburse\b",
        r"\b(?:has been|was) (?:denied|rejected)\b",
        "補てんの対象外", "補填の対象外", "補てんいたしかねます", "補填いたしかねます", "承認されませんでした",
    ),
    "more_info": (
        r"\bplease provide\b", r"\bwe need additional information\b", r"\bcould you (?:please )?provide\b",
        r"\bplease send us\b",
        "ご提供ください", "お送りください", "ご提出ください", "追加の情報が必要",
    ),
    "acknowledged": (
        r"\bwe have received your case\b", r"\byour case has been opened\b", r"\bwe received your request\b",
        "ケースを受け付けました", "お問い合わせを承りました",
    ),
}
"""Phrasings read as each meaning (English and Japanese, on NFKC text). A mail matching none, or more
than one of paid / refused / more_info, is unclear: a person reads it. Never a guess."""
NEGATION = re.compile(r"\bnot\b|n't\b|ません", re.IGNORECASE)
AMOUNT = re.compile(
    r"(?:(?P<c1>¥|\$|JPY|USD)\s?(?P<n1>\d[\d,]*(?:\.\d{1,2})?))|(?:(?P<n2>\d[\d,]*(?:\.\d{1,2})?)\s?(?P<c2>円|JPY|USD))")
CURRENCY = {"¥": "JPY", "円": "JPY", "JPY": "JPY", "$": "USD", "USD": "USD"}
WITHIN_DAYS = re.compile(r"within (\d{1,2}) days|(\d{1,2})\s*日以内", re.IGNORECASE)


def normalised(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def case_id_in(subject: str) -> str | None:
    """The case id (10 or 11 digits after Case / Case ID / ケース) in the NFKC-normalised subject."""
    found = CASE_ID.search(normalised(subject))
    return found.group(1) if found else None


@dataclass
class Reading:
    meaning: str
    """paid / refused / more_info / acknowledged / unclear"""
    amount: Decimal | None = None
    currency: str | None = None
    asked: str = ""
    """more_info: Amazon's request, in its words."""
    days: float | None = None
    """more_info: the days Amazon gives, when the mail says."""
    why: str = ""
    matched: list[str] = field(default_factory=list)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。])\s*|\n+", text) if s.strip()]


def read_reply(text: str) -> Reading:
    """What Amazon means. Only the phrasings in ``MEANINGS`` are read; anything else is unclear."""
    body = normalised(text)
    found: dict[str, list[str]] = {}
    for sentence in sentences(body):
        for meaning, patterns in MEANINGS.items():
            for pattern in patterns:
                if re.search(pattern, sentence, re.IGNORECASE):
                    if meaning == "paid" and NEGATION.search(sentence):
                        continue
                    found.setdefault(meaning, []).append(sentence)
    decisive: list[str] = [m for m in ("paid", "refused", "more_info") if m in found]
    if len(decisive) > 1:
        return Reading("unclear", why=f"the mail reads as {' and '.join(decisive)} at once", matched=decisive)
    if not decisive:
        if "acknowledged" in found:
            return Reading("acknowledged")
        return Reading("unclear", why="no phrasing Kuroko knows")
    meaning = decisive[0]
    if meaning == "paid":
        amounts = {(CURRENCY[m.group("c1") or m.group("c2")], _decimal(m.group("n1") or m.group("n2")))
                   for m in AMOUNT.finditer(body)}
        amounts = {a for a in amounts if a[1] is not None}
        if len(amounts) == 1:
            currency, amount = next(iter(amounts))
            return Reading("paid", amount=amount, currency=currency)
        return Reading("paid", why="no single amount with a currency mark in the mail")
    if meaning == "more_info":
        within = WITHIN_DAYS.search(body)
        days = float(within.group(1) or within.group(2)) if within else None
        return Reading("more_info", asked=" ".join(dict.fromkeys(found["more_info"])), days=days)
    return Reading(meaning)


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


# --- small helpers ---------------------------------------------------------------------------------
def claim_key(claim_id: int) -> str:
    return f"claim-{claim_id}"


def local(settings: Any, moment: datetime | None) -> str:
    return moment.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M") if moment else "-"


def stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y%m%d%H%M") if moment else "0"


def handover(helpdesk: Helpdesk, ledger: Ledger, effects: Effects, hold_tag: str) -> HandOver:
    return HandOver(helpdesk, ledger, effects, hold_tag=hold_tag, title=procedure.item_label)


def seen(claim: Claim, kind: str, ref: Any) -> bool:
    return any(h.get("kind") == kind and str(h.get("ref")) == str(ref) for h in claim.history or [])


def order_number_of(ledger: Ledger, claim: Claim) -> str | None:
    source = ledger.get_item(claim.item_id)
    number = source.facts.get("order_number")
    return str(number) if number else None


def filing_deadline(claim: Claim) -> datetime:
    return claim.file_by or (claim.eligible_at or claim.created_at) + timedelta(days=rules().claims_filing_window_days)


def quiet_since(claim: Claim) -> datetime:
    return claim.last_amazon_at or claim.status_since or claim.filed_at or claim.created_at


def next_nudge(claim: Claim) -> datetime:
    return quiet_since(claim) + timedelta(days=rules().claims_nudge_days * (claim.nudges + 1))


def more_info_deadline(claim: Claim) -> datetime:
    asked = claim.more_info_asked_at or claim.status_since or claim.created_at
    return claim.more_info_by or asked + timedelta(days=rules().claims_more_info_days)


@procedure.waits
def waits_for(claim: Claim) -> tuple[str, datetime | None]:
    """What the claim waits for, and until when (shown by `kuroko claims`, status, the report and the
    console's Claims page)."""
    status = claim.status
    if status == ClaimStatus.NEW:
        return "a person to file it in Seller Central, then `kuroko claim ID --case-id N`", filing_deadline(claim)
    if status in (ClaimStatus.FILED, ClaimStatus.WAITING):
        return f"Amazon's answer (nudge {claim.nudges + 1} of {rules().claims_nudges} due)", next_nudge(claim)
    if status == ClaimStatus.MORE_INFO:
        return "a person to send Amazon what it asked for, then `kuroko claim_answered ID`", more_info_deadline(claim)
    if status == ClaimStatus.STALLED:
        return "Amazon's answer: stalled after every nudge; a person decides", None
    return f"nothing ({status})", None


# --- intake: new claims, the report's item, and the mails at the claims address --------------------
@procedure.intake
def take_in(ctx: IntakeContext) -> None:
    for claim in list_claims(ctx.ledger):
        key = claim_key(claim.id)
        if ctx.ledger.find_item(key, NAME) is not None or claim.status in CLOSED_CLAIM_STATUSES:
            continue
        source = ctx.ledger.get_item(claim.item_id)
        facts = {"claim": claim.id, "mcf_order_id": claim.mcf_order_id, "kind": claim.kind,
                 "order_number": source.facts.get("order_number")}
        if ctx.take_in(key, ticket_id=source.handover_ticket_id or source.ticket_id, facts=facts) is not None:
            ctx.taken_in.append(f"claim {claim.id} ({claim.kind}, MCF order {claim.mcf_order_id}) followed")
    filed = any(c.case_id for c in list_claims(ctx.ledger))
    if filed and ctx.ledger.find_item(REPORT_KEY, NAME) is None and ctx.take_in(REPORT_KEY, step="reconcile"):
        ctx.taken_in.append("the reimbursements report is read on its schedule (a claim was filed)")
    address = load(ClaimsAddress).claims_recipient.strip()
    if not address:
        return
    helpdesk = ctx.use(HELPDESK)
    for ticket in helpdesk.tickets_to(address):
        try:
            ctx.taken_in.append(f"mail #{ticket.id}: " + read_mail(ctx, helpdesk, ticket))
        except KurokoError as exc:
            ctx.failed.append(f"mail #{ticket.id}: {exc.message}")


def forwarded_sender(helpdesk: Helpdesk, ticket: TicketView) -> str | None:
    """Who forwarded the mail: the forwarding agent (submitter ≠ requester: Zendesk agent forwarding),
    else ``via.source.from.address`` (the mailbox that forwarded it by itself)."""
    submitter, requester = ticket.submitter_id, ticket.requester_id
    if submitter is not None and requester is not None and submitter != requester:
        return helpdesk.user_email(submitter)
    if ticket.via_from:
        return ticket.via_from
    return helpdesk.user_email(ticket.requester_id) if ticket.requester_id is not None else None


def read_mail(ctx: IntakeContext, helpdesk: Helpdesk, ticket: TicketView) -> str:
    sender = forwarded_sender(helpdesk, ticket)
    if not sender or sender.casefold() not in rules().senders():
        return drop(ctx, helpdesk, ticket, f"the sender {sender or '(none)'} is not registered (KUROKO_CLAIMS_SENDERS)")
    case = case_id_in(ticket.subject)
    if case is None:
        return drop(ctx, helpdesk, ticket, "its subject names no Amazon case id")
    text = f"{ticket.subject}\n{ticket.description}"
    claim = find_claim_by_case(ctx.ledger, case)
    learned = ""
    if claim is None:
        claim = new_claim_named(ctx.ledger, normalised(text))
        if claim is None:
            return drop(ctx, helpdesk, ticket, f"case {case} is not one of Kuroko's claims")
        claim = record_claim_case(ctx.ledger, claim.id, case, now=ctx.now)
        ctx.ledger.audit(item_id=claim.item_id, at=ctx.now, actor=ctx.effects.actor, system="kuroko",
                         action="claim_filed", detail={"claim": claim.id, "case_id": case, "from_ticket": ticket.id})
        learned = f"case id {case} learned for claim {claim.id}; "
    if claim.status in CLOSED_CLAIM_STATUSES and not seen(claim, "reply", ticket.id):
        return closed_reply(ctx, helpdesk, ticket, claim)
    if claim.status == ClaimStatus.NEW:  # a case id recorded by hand on a claim still New: cannot happen
        return drop(ctx, helpdesk, ticket, f"claim {claim.id} is not filed yet")
    return learned + attach(ctx, helpdesk, ticket, claim, text)


def new_claim_named(ledger: Ledger, text: str) -> Claim | None:
    """The one New claim (no case id yet) whose MCF order id or Rakuten order number the mail names."""
    named = []
    for claim in list_claims(ledger):
        if claim.status != ClaimStatus.NEW or claim.case_id:
            continue
        number = order_number_of(ledger, claim)
        if claim.mcf_order_id in text or (number and number in text):
            named.append(claim)
    return named[0] if len(named) == 1 else None


def mail_marker(ticket: TicketView, what: str) -> str:
    return marker(f"claims-mail-{ticket.id}", what)


def drop(ctx: IntakeContext, helpdesk: Helpdesk, ticket: TicketView, why: str) -> str:
    """Not an Amazon reply Kuroko follows: solved at once, tagged, with one line saying why. Never deleted."""
    tag = mail_marker(ticket, "irrelevant")
    body = f"Kuroko: not an Amazon reply it follows — {why}. Solved and kept (never deleted).\n\n{tag}"
    if not any(tag in c.body for c in helpdesk.comments(ticket.id)):
        ctx.act("zendesk", "drop_irrelevant_mail",
                lambda: helpdesk.add_internal_note(ticket.id, body, status="solved", add_tags=[IRRELEVANT_TAG]),
                ticket=str(ticket.id), reason=why)
    else:
        ctx.act("zendesk", "solve_irrelevant_mail", lambda: helpdesk.set_status(ticket.id, "solved"),
                ticket=str(ticket.id))
    return f"dropped ({why})"


def solve_forwarded(ctx: IntakeContext, helpdesk: Helpdesk, ticket: TicketView, claim: Claim, body: str) -> None:
    tag = mail_marker(ticket, f"claim-{claim.id}")
    if any(tag in c.body for c in helpdesk.comments(ticket.id)):
        ctx.act("zendesk", "solve_forwarded_mail", lambda: helpdesk.set_status(ticket.id, "solved"),
                ticket=str(ticket.id), claim=str(claim.id))
        return
    ctx.act("zendesk", "solve_forwarded_mail",
            lambda: helpdesk.add_internal_note(ticket.id, f"{body}\n\n{tag}", status="solved"),
            ticket=str(ticket.id), claim=str(claim.id))


def closed_reply(ctx: IntakeContext, helpdesk: Helpdesk, ticket: TicketView, claim: Claim) -> str:
    """A reply to a closed claim: recorded on the claim (its history), nothing else changes."""
    update_claim(ctx.ledger, claim.id, history={"kind": "late_reply", "ref": ticket.id, "at": ctx.now.isoformat(),
                                                "reading": read_reply(ticket.description).meaning})
    solve_forwarded(ctx, helpdesk, ticket, claim,
                    f"Kuroko: a reply about case {claim.case_id}, claim {claim.id}, which is already {claim.status}. "
                    "Recorded on the claim; nothing changed.")
    return f"reply to closed claim {claim.id} recorded"


def claim_item(ctx: IntakeContext, claim: Claim) -> WorkItem:
    item = ctx.ledger.find_item(claim_key(claim.id), NAME)
    if item is None:  # a claim closed before it was ever followed: follow it now for its notes
        source = ctx.ledger.get_item(claim.item_id)
        ctx.take_in(claim_key(claim.id), ticket_id=source.handover_ticket_id or source.ticket_id,
                    facts={"claim": claim.id, "mcf_order_id": claim.mcf_order_id, "kind": claim.kind})
        item = ctx.ledger.find_item(claim_key(claim.id), NAME)
        assert item is not None
    return item


def attach(ctx: IntakeContext, helpdesk: Helpdesk, ticket: TicketView, claim: Claim, text: str) -> str:
    """Amazon's words on the claim's ticket, the claim moved by their meaning, the forwarded ticket
    solved with a note naming the claim's ticket."""
    reading = read_reply(ticket.description)
    item = claim_item(ctx, claim)
    changes = after_reply(claim, reading, ctx.now) if not seen(claim, "reply", ticket.id) else {}
    settled = changes.get("status", claim.status) == ClaimStatus.REIMBURSED
    person = reading.meaning in ("more_info", "unclear", "refused")
    words = ticket.description.strip()
    what = {
        "paid": f"Amazon reimbursed the claim: {money(reading.amount, reading.currency)}"
                + ("" if reading.amount is not None else " (no amount with a currency mark in the mail: the "
                                                         "reimbursements report will tell)") + ". Claim Reimbursed.",
        "refused": "Amazon refused the claim. Claim Rejected.\nNeeded: decide whether to answer the case in Seller "
                   "Central with more proof (Amazon may reopen it) or leave it closed.",
        "more_info": "Amazon asks for more information:\n  " + reading.asked + "\nNeeded: send it in Seller Central by "
                     f"{local(ctx.settings, changes.get('more_info_by') or claim.more_info_by)} (JST), then run "
                     f"`kuroko claim_answered {claim.id}`.",
        "acknowledged": "Amazon acknowledged the case. Claim Filed; Kuroko waits for Amazon's answer.",
        "unclear": f"Kuroko could not read what Amazon means ({reading.why}). Needed: read Amazon's words below and "
                   f"record the outcome with `kuroko claim_outcome {claim.id} --paid AMOUNT | --rejected | --closed | "
                   "--waiting`.",
    }[reading.meaning]
    body = (f"Amazon replied on case {claim.case_id} (claim {claim.id}, {claim.kind}, MCF order {claim.mcf_order_id}); "
            f"forwarded mail: ticket #{ticket.id}.\n{what}\n\n--- Amazon's words ---\n{ticket.subject}\n\n{words}\n---")
    desk = handover(helpdesk, ctx.ledger, ctx.effects, ctx.settings.hold_tag)
    target = desk.note(item, ctx.now, body, marker(item.key, f"reply-{ticket.id}"), action="attach_amazon_reply",
                       status="solved" if settled else "open", hold=person, reason=reading.meaning)
    if changes:
        update_claim(ctx.ledger, claim.id, **changes,
                     history={"kind": "reply", "ref": ticket.id, "at": ctx.now.isoformat(), "reading": reading.meaning,
                              "amount": str(reading.amount) if reading.amount is not None else None})
        ctx.ledger.audit(item_id=item.id, at=ctx.now, actor=ctx.effects.actor, system="kuroko",
                         action="claim_" + reading.meaning, detail={"claim": claim.id, "ticket": ticket.id,
                                                                     "status": changes.get("status", claim.status)})
        if item.state == "active":  # its deadlines are looked at again at once (a new one, or none)
            ctx.ledger.update_item(item.id, ctx.now, next_due_at=ctx.now)
    solve_forwarded(ctx, helpdesk, ticket, claim,
                    f"Kuroko: attached to claim {claim.id} (case {claim.case_id}) on ticket #{target}: "
                    f"{reading.meaning}.")
    return f"attached to claim {claim.id}: {reading.meaning}"


def after_reply(claim: Claim, reading: Reading, now: datetime) -> dict[str, Any]:
    """The claim's columns after this reply."""
    changes: dict[str, Any] = {"last_amazon_at": now}
    if reading.meaning == "paid":
        changes.update(status=ClaimStatus.REIMBURSED.value, status_since=now, paid_at=now,
                       closed_reason="Amazon's mail: reimbursed")
        if reading.amount is not None:
            changes.update(amount_paid=reading.amount, currency=reading.currency or claim.currency)
    elif reading.meaning == "refused":
        changes.update(status=ClaimStatus.REJECTED.value, status_since=now, closed_reason="Amazon's mail: refused")
    elif reading.meaning == "more_info":
        days = reading.days or rules().claims_more_info_days
        changes.update(status=ClaimStatus.MORE_INFO.value, status_since=now, more_info_asked_at=now,
                       more_info_by=now + timedelta(days=days), more_info_text=reading.asked, nudges=0)
    elif reading.meaning == "unclear":
        if claim.status in (ClaimStatus.FILED, ClaimStatus.STALLED):
            changes.update(status=ClaimStatus.WAITING.value, status_since=now)
        changes["nudges"] = 0
    else:  # acknowledged
        changes["nudges"] = 0
        if claim.status == ClaimStatus.STALLED:
            changes.update(status=ClaimStatus.WAITING.value, status_since=now)
    return changes


# --- one claim's deadlines -------------------------------------------------------------------------
def step_note(ctx: StepContext, what: str, body: str, *, hold: bool = True) -> int:
    desk = handover(ctx.use(HELPDESK), ctx.ledger, ctx.effects, ctx.settings.hold_tag)
    return desk.note(ctx.item, ctx.now, body, marker(ctx.key, what), action=f"note_{what.split('-')[0]}",
                     status="open", hold=hold, reason=what)


@procedure.step(first=True, final=True, needs_person=(
    "Look at the claim in Seller Central (its case, Amazon's answers) and record where it stands with "
    "`kuroko claim_outcome`, then let Kuroko continue."))
def follow(ctx: StepContext) -> Outcome:
    claim = get_claim(ctx.ledger, int(ctx.facts["claim"]))
    if claim is None:
        return Done(None, detail="the claim is no longer in the ledger")
    ctx.facts["status"] = claim.status
    if claim.status in CLOSED_CLAIM_STATUSES:
        return Done(None, detail=f"claim {claim.status}", path=claim.status.lower())
    r = rules()
    head = (f"Claim {claim.id} ({claim.kind} parcel, MCF order {claim.mcf_order_id}, package {claim.package_number}"
            + (f", case {claim.case_id}" if claim.case_id else "") + ")")
    if claim.status == ClaimStatus.NEW:
        case = case_from_tags(ctx, claim)
        if case is None:
            return filing_window(ctx, claim, head)
        record_claim_case(ctx.ledger, claim.id, case, now=ctx.now)
        ctx.ledger.audit(item_id=ctx.item.id, at=ctx.now, actor="person (Zendesk tag)", system="kuroko",
                         action="claim_filed", detail={"claim": claim.id, "case_id": case})
        return NotYet(ctx.now + timedelta(days=r.claims_nudge_days), f"filed as case {case} (Zendesk tag)")
    if claim.status == ClaimStatus.MORE_INFO:
        deadline = more_info_deadline(claim)
        remind = (claim.more_info_asked_at or ctx.now) + timedelta(days=r.claims_more_info_reminder_days)
        if ctx.now >= deadline:
            step_note(ctx, f"more-info-due-{stamp(claim.more_info_asked_at)}",
                      f"{head}: the {r.claims_more_info_days:g} days to answer Amazon's request ended "
                      f"{local(ctx.settings, deadline)} (JST). Amazon asked:\n  {claim.more_info_text}\n"
                      "Needed: answer the "
                      f"case now if it is still open, then `kuroko claim_answered {claim.id}`.")
            return NotYet(ctx.now + timedelta(days=r.claims_nudge_days), "Amazon's request is past its deadline")
        if ctx.now >= remind:
            step_note(ctx, f"more-info-reminder-{stamp(claim.more_info_asked_at)}",
                      f"Reminder — {head}: Amazon's request for more information must be answered by "
                      f"{local(ctx.settings, deadline)} (JST). Amazon asked:\n  {claim.more_info_text}\nNeeded: answer "
                      f"it in Seller Central, then `kuroko claim_answered {claim.id}`.")
            return NotYet(deadline, "waiting for a person to answer Amazon (reminded)")
        return NotYet(remind, "waiting for a person to answer Amazon's request")
    if claim.status == ClaimStatus.STALLED:
        return NotYet(ctx.now + timedelta(days=r.claims_nudge_days), "stalled: waiting for Amazon or a person")
    due = next_nudge(claim)
    if ctx.now < due:
        return NotYet(due, f"waiting for Amazon's answer on case {claim.case_id}")
    since = quiet_since(claim)
    if claim.nudges < r.claims_nudges:
        n = claim.nudges + 1
        step_note(ctx, f"nudge-{stamp(since)}-{n}",
                  f"{head}: no word from Amazon since {local(ctx.settings, since)} (JST). Needed: nudge the case in "
                  f"Seller Central (reply on case {claim.case_id} asking for an update). "
                  f"Nudge {n} of {r.claims_nudges}.")
        claim = update_claim(ctx.ledger, claim.id, nudges=n, next_nudge_at=next_nudge_after(claim, n),
                             history={"kind": "nudge", "ref": f"{stamp(since)}-{n}", "at": ctx.now.isoformat()})
        return NotYet(next_nudge(claim), f"nudge {n} asked; waiting for Amazon")
    step_note(ctx, f"stalled-{stamp(since)}",
              f"{head}: Amazon has not answered after {r.claims_nudges} nudges since {local(ctx.settings, since)} "
              "(JST). The claim is flagged Stalled. Needed: open a new case or escalate in Seller Central, or close it "
              f"with `kuroko claim_outcome {claim.id} --closed`.")
    update_claim(ctx.ledger, claim.id, status=ClaimStatus.STALLED.value, status_since=ctx.now,
                 history={"kind": "stalled", "ref": stamp(since), "at": ctx.now.isoformat()})
    return NotYet(ctx.now + timedelta(days=r.claims_nudge_days), "stalled after every nudge")


TAG_CASE = re.compile(r"^kuroko_claim_(\d+)_case_(\d{10,11})$")


def case_from_tags(ctx: StepContext, claim: Claim) -> str | None:
    """For people who live in Zendesk: the tag ``kuroko_claim_<claim>_case_<case id>`` on the claim's
    ticket records the filing as `kuroko claim` does."""
    ticket = ctx.item.handover_ticket_id or ctx.item.ticket_id
    if ticket is None:
        return None
    for tag in ctx.use(HELPDESK).ticket(ticket).tags:
        found = TAG_CASE.match(tag)
        if found and int(found.group(1)) == claim.id:
            return found.group(2)
    return None


def next_nudge_after(claim: Claim, nudges: int) -> datetime:
    return quiet_since(claim) + timedelta(days=rules().claims_nudge_days * (nudges + 1))


def filing_window(ctx: StepContext, claim: Claim, head: str) -> Outcome:
    r = rules()
    ends = filing_deadline(claim)
    first = ends - timedelta(days=r.claims_filing_reminder_days)
    last = ends - timedelta(days=1)
    if claim.file_by is None:
        update_claim(ctx.ledger, claim.id, file_by=ends)
    if ctx.now >= ends:
        step_note(ctx, "filing-expired",
                  f"{head} was not filed within the filing window, which ended {local(ctx.settings, ends)} (JST). The "
                  f"claim is Closed. If it was filed after all, record the case id with `kuroko claim {claim.id} "
                  "--case-id N`.", hold=False)
        update_claim(ctx.ledger, claim.id, status=ClaimStatus.CLOSED.value, status_since=ctx.now,
                     closed_reason="filing window expired", history={"kind": "expired", "ref": "filing",
                                                                     "at": ctx.now.isoformat()})
        return Done(None, detail="filing window expired: claim Closed", path="expired")
    text = (f"{head} is not filed yet; the filing window ends {local(ctx.settings, ends)} (JST). Needed: file it in "
            f"Seller Central with the text in the earlier note, then `kuroko claim {claim.id} --case-id N`.")
    if ctx.now >= last:
        step_note(ctx, "filing-last-day", "Last day — " + text)
        return NotYet(min(ends, ctx.now + timedelta(hours=r.claims_tag_hours)),
                      "last day of the filing window (reminded)")
    if ctx.now >= first:
        step_note(ctx, "filing-reminder", "Reminder — " + text)
        return NotYet(min(last, ctx.now + timedelta(hours=r.claims_tag_hours)), "filing window ends soon (reminded)")
    return NotYet(min(first, ctx.now + timedelta(hours=r.claims_tag_hours)),
                  f"waiting for a person to file it (window ends {local(ctx.settings, ends)} JST)")


# --- the reimbursements report ---------------------------------------------------------------------
@procedure.step(name="reconcile", final=True, needs_person=(
    "Read the reimbursements report in Seller Central (Reports → Fulfillment → Reimbursements) and mark the "
    "claims it pays with `kuroko claim_outcome`."))
def reconcile(ctx: StepContext) -> Outcome:
    r = rules()
    rows = ctx.use(FULFILLMENT).reimbursements(ctx.now - timedelta(days=r.claims_report_days), ctx.now)
    ours_orders, ours_skus = our_mcf_orders(ctx.ledger)
    said: list[str] = []
    for row in rows:
        claim = find_claim_by_case(ctx.ledger, row.case_id) if row.case_id else None
        if claim is not None:
            said += paid_by_report(ctx, claim, row)
        elif (row.amazon_order_id and row.amazon_order_id in ours_orders) or (row.case_id and row.sku in ours_skus):
            said += unknown_row(ctx, row)
    ctx.facts["last_read"] = ctx.now.isoformat()
    ctx.facts["rows_read"] = len(rows)
    return NotYet(ctx.now + timedelta(hours=r.claims_report_hours),
                  f"report read: {len(rows)} rows" + (f"; {', '.join(said)}" if said else ""))


def our_mcf_orders(ledger: Ledger) -> tuple[set[str], set[str]]:
    orders: set[str] = {c.mcf_order_id for c in list_claims(ledger)}
    skus: set[str] = set()
    for item in ledger.items(procedure=AFTERCARE):
        orders.add(item.key)
        for line in item.facts.get("items") or []:
            if isinstance(line, dict) and line.get("sku"):
                skus.add(str(line["sku"]))
    return orders, skus


def paid_by_report(ctx: StepContext, claim: Claim, row: ReimbursementRow) -> list[str]:
    if seen(claim, "report", row.reimbursement_id):
        return []
    item = ctx.ledger.find_item(claim_key(claim.id), NAME)
    rows = [h for h in claim.history or [] if h.get("kind") == "report"]
    total = sum((Decimal(str(h["amount"])) for h in rows if h.get("amount") is not None), Decimal(0))
    total += row.amount_total or Decimal(0)
    currency = row.currency or claim.currency or "JPY"
    if item is not None:
        handover(ctx.use(HELPDESK), ctx.ledger, ctx.effects, ctx.settings.hold_tag).note(
            item, ctx.now,
            f"Amazon's reimbursements report shows claim {claim.id} (case {claim.case_id}, MCF order "
            f"{claim.mcf_order_id}) paid: {money(row.amount_total, currency)} (reimbursement {row.reimbursement_id}, "
            f"approved {local(ctx.settings, row.approval_date)} JST, {row.reason}). Claim Reimbursed.",
            marker(item.key, f"report-{row.reimbursement_id}"), action="note_report_paid", status="solved", hold=False)
    update_claim(ctx.ledger, claim.id, status=ClaimStatus.REIMBURSED.value, amount_paid=total, currency=currency,
                 paid_at=claim.paid_at or row.approval_date or ctx.now,
                 status_since=claim.status_since if claim.status == ClaimStatus.REIMBURSED else ctx.now,
                 closed_reason=claim.closed_reason or "reimbursements report: paid",
                 history={"kind": "report", "ref": row.reimbursement_id, "at": ctx.now.isoformat(),
                          "amount": str(row.amount_total) if row.amount_total is not None else None})
    if item is not None and item.state == "active":
        ctx.ledger.update_item(item.id, ctx.now, next_due_at=ctx.now)
    return [f"claim {claim.id} paid {money(row.amount_total, currency)}"]


def unknown_row(ctx: StepContext, row: ReimbursementRow) -> list[str]:
    body = (f"Amazon's reimbursements report has a row for one of Kuroko's MCF orders that no claim explains: "
            f"reimbursement {row.reimbursement_id}, case {row.case_id or '(none)'}, "
            f"order {row.amazon_order_id or '-'}, "
            f"SKU {row.sku}, {money(row.amount_total, row.currency)} ({row.reason}), approved "
            f"{local(ctx.settings, row.approval_date)} JST.\n"
            "Needed: find which claim it pays (if any) and record it with "
            "`kuroko claim ID --case-id N`, or note that it is not ours.")
    handover(ctx.use(HELPDESK), ctx.ledger, ctx.effects, ctx.settings.hold_tag).note(
        ctx.item, ctx.now, body, marker(ctx.key, f"unknown-{row.reimbursement_id}"), action="note_unknown_row",
        status="open", hold=True)
    return [f"row {row.reimbursement_id} shown to a person"]


# --- what a person does ----------------------------------------------------------------------------
@procedure.command
def claims(desk: DeskContext,
           every: Annotated[bool, typer.Option("--all", help="Closed claims too.")] = False) -> str:
    """Every claim: its status, what it waits for and until when, money claimed and paid."""
    lines = []
    for claim in list_claims(desk.ledger):
        if not every and claim.status in CLOSED_CLAIM_STATUSES:
            continue
        waiting, until = waits_for(claim)
        lines.append(f"claim {claim.id}  {claim.kind:<7} {claim.status:<10} MCF {claim.mcf_order_id} "
                     f"pkg {claim.package_number}  case {claim.case_id or '-'}  claimed "
                     f"{money(claim.amount_claimed, claim.currency)} paid {money(claim.amount_paid, claim.currency)}\n"
                     f"    waits for {waiting}" + (f" — by {local(desk.settings, until)} JST" if until else ""))
    totals = summary_lines(desk.ledger, desk.now)
    return "\n".join((lines or ["No open claims."]) + totals)


@procedure.command
def claim_answered(desk: DeskContext,
                   claim_id: Annotated[int, typer.Argument(help="The claim's number.")]) -> str:
    """A person answered Amazon's request for more information in Seller Central."""
    claim = get_claim(desk.ledger, claim_id)
    if claim is None:
        raise KurokoError(f"the ledger has no claim {claim_id}; `kuroko claims` lists them.")
    if claim.status != ClaimStatus.MORE_INFO:
        raise KurokoError(f"claim {claim_id} is {claim.status}: Amazon is not waiting for an answer.")
    update_claim(desk.ledger, claim_id, status=ClaimStatus.WAITING.value, status_since=desk.now, nudges=0,
                 last_amazon_at=None, history={"kind": "answered", "ref": desk.now.isoformat(), "by": desk.by})
    desk.ledger.audit(item_id=claim.item_id, at=desk.now, actor=desk.by, system="kuroko", action="claim_answered",
                      detail={"claim": claim_id})
    return f"Recorded: claim {claim_id} answered; Kuroko waits for Amazon again."


@procedure.command
def claim_outcome(desk: DeskContext,
                  claim_id: Annotated[int, typer.Argument(help="The claim's number.")],
                  paid: Annotated[str | None, typer.Option("--paid", help="Amazon paid this amount.")] = None,
                  currency: Annotated[str, typer.Option("--currency")] = "JPY",
                  rejected: Annotated[bool, typer.Option("--rejected")] = False,
                  closed: Annotated[bool, typer.Option("--closed")] = False,
                  waiting: Annotated[bool, typer.Option("--waiting", help="Still open: wait for Amazon.")] = False,
                  ) -> str:
    """Record where a claim stands when Kuroko could not read it (an unclear reply, a stalled case)."""
    claim = get_claim(desk.ledger, claim_id)
    if claim is None:
        raise KurokoError(f"the ledger has no claim {claim_id}; `kuroko claims` lists them.")
    chosen = [x for x in (paid is not None, rejected, closed, waiting) if x]
    if len(chosen) != 1:
        raise KurokoError("give exactly one of --paid AMOUNT, --rejected, --closed, --waiting.")
    changes: dict[str, Any] = {"status_since": desk.now}
    if paid is not None:
        amount = _decimal(paid)
        if amount is None:
            raise KurokoError(f"{paid!r} is not an amount.")
        changes.update(status=ClaimStatus.REIMBURSED.value, amount_paid=amount, currency=currency.upper(),
                       paid_at=desk.now, closed_reason=f"{desk.by}: paid")
    elif rejected:
        changes.update(status=ClaimStatus.REJECTED.value, closed_reason=f"{desk.by}: rejected")
    elif closed:
        changes.update(status=ClaimStatus.CLOSED.value, closed_reason=f"{desk.by}: closed")
    else:
        changes.update(status=ClaimStatus.WAITING.value, nudges=0, last_amazon_at=desk.now)
    update_claim(desk.ledger, claim_id, **changes, history={"kind": "outcome", "ref": desk.now.isoformat(),
                                                            "by": desk.by, "status": changes["status"]})
    desk.ledger.audit(item_id=claim.item_id, at=desk.now, actor=desk.by, system="kuroko", action="claim_outcome",
                      detail={"claim": claim_id, "status": changes["status"]})
    return f"Recorded: claim {claim_id} is {changes['status']}."


# --- status and report lines -----------------------------------------------------------------------
@procedure.summary
def summary_lines(ledger: Ledger, now: datetime) -> list[str]:
    """Open claims and what each waits for; money claimed and paid, per currency."""
    every = list_claims(ledger)
    if not every:
        return []
    open_ = [c for c in every if c.status not in CLOSED_CLAIM_STATUSES]
    claimed: dict[str, Decimal] = {}
    paid: dict[str, Decimal] = {}
    for c in every:
        cur = c.currency or "JPY"
        if c.amount_claimed is not None:
            claimed[cur] = claimed.get(cur, Decimal(0)) + c.amount_claimed
        if c.amount_paid is not None:
            paid[cur] = paid.get(cur, Decimal(0)) + c.amount_paid
    currencies = sorted(set(claimed) | set(paid)) or ["JPY"]
    lines = [f"Claims: {len(open_)} open of {len(every)}; "
             + "; ".join(f"claimed {money(claimed.get(cur), cur) if cur in claimed else money(Decimal(0), cur)}, "
                         f"paid {money(paid.get(cur, Decimal(0)), cur)}" for cur in currencies)
             + f" ({sum(1 for c in every if c.status == ClaimStatus.REIMBURSED)} reimbursed, "
               f"{sum(1 for c in every if c.status == ClaimStatus.REJECTED)} rejected)"]
    for c in open_:
        waiting, until = waits_for(c)
        lines.append(f"  claim {c.id} {c.status} (case {c.case_id or '-'}, MCF {c.mcf_order_id}): waits for {waiting}"
                     + (f", by {until.astimezone(ZoneInfo('Asia/Tokyo')).strftime('%Y-%m-%d %H:%M')} JST"
                        if until else ""))
    return lines


__all__ = ["OPEN_CLAIM_STATUSES", "case_id_in", "procedure", "read_reply"]
