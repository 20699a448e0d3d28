"""Reading Rakuten's order mails: anything doubtful is refused with a reason, never guessed."""

from __future__ import annotations

import pytest

from kuroko.errors import UnknownValue
from services.rakuten_mail import UnreadableTicket, normalize_tracking_number, read_order_mail

SUBJECT = "[Rakuten Marketplace] Order Details Confirmation (automatic email)"
GOOD = "381234-20261120-1234567890"


def test_reads_order_number_and_purchase_history_link() -> None:
    mail = read_order_mail(SUBJECT, f"[受注番号] {GOOD}\nPurchase History: http://127.0.0.1:8102/rms/order/{GOOD}")
    assert mail.order_number == GOOD
    assert mail.purchase_history_url == f"http://127.0.0.1:8102/rms/order/{GOOD}"


def test_the_same_number_twice_is_one_order() -> None:
    assert read_order_mail(SUBJECT, f"{GOOD} ... {GOOD}").order_number == GOOD


def test_full_width_digits_in_the_mail_are_read() -> None:
    body = "受注番号：３８１２３４－２０２６１１２０－１２３４５６７８９０"
    assert read_order_mail(SUBJECT, body).order_number == GOOD


def test_html_formatting_is_read_as_text() -> None:
    body = f"<p>受注番号 <b>{GOOD}</b></p>"
    assert read_order_mail(SUBJECT, body).order_number == GOOD


@pytest.mark.parametrize("body", [f"<p>{GOOD}</p><script>alert('x')</script>", f'<img src=x onerror="alert(1)"> {GOOD}',
                                  f"{GOOD} &lt;iframe src=//x&gt;"], ids=["script", "handler", "escaped"])
def test_script_or_active_html_is_refused(body: str) -> None:
    with pytest.raises(UnreadableTicket, match="active HTML"):
        read_order_mail(SUBJECT, body)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("ご注文ありがとうございます。", "no Rakuten order number"),
        (f"{GOOD} and 381234-20261120-9999999999", "2 different order numbers"),
        ("受注番号 381234-2026112-123456789", "not in Rakuten's form"),
        ("受注番号 381234-20261340-1234567890", "no valid date"),
    ],
    ids=["none", "two", "malformed", "bad-date"],
)
def test_doubtful_mails_are_refused_with_the_reason(body: str, why: str) -> None:
    with pytest.raises(UnreadableTicket, match=why):
        read_order_mail(SUBJECT, body)


def test_tracking_numbers_are_normalised_or_refused() -> None:
    assert normalize_tracking_number("１２３４−５６７８−９０１２") == "1234-5678-9012"
    assert normalize_tracking_number(" 4471 2033 5100 ") == "447120335100"
    with pytest.raises(UnknownValue):
        normalize_tracking_number("<script>")
