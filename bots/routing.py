"""One router for new tickets: three procedures read the same Zendesk inbox, and each new ticket
belongs to exactly one of them (or to none: left to the desk untouched).

- Rakuten's automatic order mails (their exact subjects, not a reply to one) → procedure A;
- a mail received at the claims address (``KUROKO_CLAIMS_RECIPIENT``) → the claims procedure;
- a ticket that names a Rakuten order number (after NFKC normalisation: full-width digits and
  dashes), or comes from the masked buyer address (…@*.fw.rakuten.ne.jp) of a known order →
  buyer questions (bots/buyer_inquiries.py), which answers delivery questions and hands the rest
  to a person;
- anything else → None.

``route`` is a pure function of the ticket (and the masked addresses of the orders the robot
knows): every procedure's intake asks it, so no ticket is taken in by two.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

from services.helpdesk import TicketView, is_claims_mail
from services.rakuten_mail import ORDER_MAIL_SUBJECTS, ORDER_NUMBER, plain_text

Route = Literal["rakuten_sim_order", "amazon_claims", "buyer_inquiries"]
MASKED_ADDRESS = re.compile(r"^[^@\s]+@[a-z0-9-]+\.fw\.rakuten\.ne\.jp$", re.IGNORECASE)
"""Rakuten's masked buyer address (あんしんメルアド): …@pc.fw.rakuten.ne.jp, …@dm.fw.rakuten.ne.jp."""
REPLY_PREFIX = re.compile(r"^\s*(re|aw|返信)\s*[:：]", re.IGNORECASE)
"""A reply: a buyer answering Rakuten's order mail writes to the shop about the order."""


def is_masked(address: str | None) -> bool:
    return bool(address) and bool(MASKED_ADDRESS.match(str(address).strip()))


def is_order_mail(ticket: TicketView) -> bool:
    """Rakuten's automatic order mail (its subject, also forwarded), not a buyer's reply to it: never a
    ``Re:``, never from a masked buyer address."""
    subject = ticket.subject.strip()
    return (not REPLY_PREFIX.match(subject) and not is_masked(ticket.requester_email)
            and any(s in subject for s in ORDER_MAIL_SUBJECTS))


def order_numbers(ticket: TicketView) -> list[str]:
    """Every Rakuten order number the ticket names (subject and description, NFKC-normalised)."""
    text = plain_text(f"{ticket.subject}\n{ticket.description}")
    return sorted(set(ORDER_NUMBER.findall(text)))


def route(ticket: TicketView, *, known_addresses: Collection[str] = ()) -> Route | None:
    """Which procedure takes ``ticket`` in: one name, or None (the desk's). ``known_addresses``:
    the (lower-case) masked buyer addresses of the orders the robot knows."""
    if is_claims_mail(ticket):  # first: whatever it says, a mail at the claims address is Amazon's reply
        return "amazon_claims"
    if is_order_mail(ticket):
        return "rakuten_sim_order"
    if order_numbers(ticket):
        return "buyer_inquiries"
    sender = (ticket.requester_email or "").strip().casefold()
    if is_masked(sender) and sender in known_addresses:
        return "buyer_inquiries"
    return None
