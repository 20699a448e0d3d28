"""Reading Rakuten's automatic order mails (as Zendesk tickets): the order number and the
Purchase History link. Anything doubtful is refused, never guessed."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from kuroko.errors import BusinessRuleError, UnknownValue


class UnreadableTicket(BusinessRuleError):
    """No (or more than one, or a malformed) order number in the ticket."""

    code = "unreadable_ticket"


ORDER_NUMBER = re.compile(r"(?<![\d-])(\d{6}-\d{8}-\d{10})(?![\d-])")
"""Rakuten's form: shop (6 digits) - date (YYYYMMDD) - 10 digits."""
NEAR_ORDER_NUMBER = re.compile(r"(?<![\d-])\d{4,8}-\d{6,10}-\d{6,12}(?![\d-])")
PURCHASE_HISTORY = re.compile(r"Purchase History\s*[:：]\s*(\S+)", re.IGNORECASE)
ACTIVE_CONTENT = re.compile(
    r"<\s*(script|iframe|object|embed|form)\b|<[^>]*\son[a-z]+\s*=|javascript\s*:", re.IGNORECASE)
"""Script and other active HTML: Rakuten's automatic mails never carry it, so such a ticket is not
read (formatting tags such as <p> or <b> are harmless and read as text)."""

ORDER_MAIL_SUBJECTS = (
    "[Rakuten Marketplace] Order Details Confirmation (automatic email)",
    "[Rakuten Marketplace] Order Confirmation (automatic email)",
)


DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−ｰー－"})
"""Dash look-alikes people and mail systems type in numbers."""


@dataclass(frozen=True)
class OrderMail:
    order_number: str
    purchase_history_url: str | None


def plain_text(text: str) -> str:
    """Mail text with HTML tags removed and full-width digits and dashes made ASCII."""
    text = re.sub(r"<[^>]*>", " ", text)
    text = html.unescape(text)
    return unicodedata.normalize("NFKC", text).translate(DASHES)


def read_order_mail(subject: str, body: str) -> OrderMail:
    raw = f"{subject}\n{body}"
    active = ACTIVE_CONTENT.search(raw) or ACTIVE_CONTENT.search(html.unescape(raw))
    if active:
        what = active.group(1) or "an event handler or javascript: link"
        raise UnreadableTicket(f"the ticket contains script or other active HTML ({what}), which Rakuten's "
                               "automatic mails never do; it was not read")
    text = plain_text(raw)
    numbers = sorted(set(ORDER_NUMBER.findall(text)))
    if not numbers:
        near = NEAR_ORDER_NUMBER.findall(text)
        if near:
            raise UnreadableTicket(
                f"the ticket has something like an order number ({near[0]}) that is not in Rakuten's form "
                "NNNNNN-YYYYMMDD-NNNNNNNNNN"
            )
        raise UnreadableTicket("the ticket has no Rakuten order number (form NNNNNN-YYYYMMDD-NNNNNNNNNN)")
    if len(numbers) > 1:
        raise UnreadableTicket(f"the ticket names {len(numbers)} different order numbers: {', '.join(numbers)}")
    number = numbers[0]
    _check_date(number)
    match = PURCHASE_HISTORY.search(text)
    return OrderMail(order_number=number, purchase_history_url=match.group(1) if match else None)


def _check_date(number: str) -> None:
    day = number.split("-")[1]
    month, dom = int(day[4:6]), int(day[6:8])
    if not (1 <= month <= 12 and 1 <= dom <= 31):
        raise UnreadableTicket(f"the order number {number} carries no valid date")


def normalize_tracking_number(raw: str) -> str:
    """Full-width digits and dashes to ASCII; anything that is not a plausible tracking number
    is refused."""
    value = unicodedata.normalize("NFKC", raw).translate(DASHES).strip().replace(" ", "")
    if not re.fullmatch(r"[A-Za-z0-9-]{6,40}", value):
        raise UnknownValue(f"the tracking number {raw!r} is not a plausible tracking number")
    return value
