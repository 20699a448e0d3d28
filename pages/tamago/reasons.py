"""The 要対応 reasons of seed 001 (たまご's manual, 「各種要対応時の対応方法と理由」): each message as
たまご writes it, and which reason a shown message is. A message no rule knows is ``None``: the
procedure hands such an order to a person."""

from __future__ import annotations

import re
from enum import StrEnum


class Reason(StrEnum):
    NP_NG_1 = "np_ng_1"
    """NP与信NG pattern 1: first order, the delivery method cannot take 代引き."""
    NP_NG_2 = "np_ng_2"
    """NP与信NG pattern 2: second order or later."""
    NP_NG_3 = "np_ng_3"
    """NP与信NG pattern 3: the delivery method cannot take 代引き."""
    NP_NG_4 = "np_ng_4"
    """NP与信NG pattern 4: every NG flagged."""
    NP_UNKNOWN = "np_unknown"
    """Pattern 5: NP's result could not be identified → contact Net Protections."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """NP's registered amount differs from the shipping report's → redo the authorisation."""
    BLACKLIST_CANDIDATE = "blacklist_candidate"
    PAYMENT_FAILED = "payment_failed"
    """たまご決済失敗: the card charge of the NEXT subscription order failed; flagged on the order before it."""
    BLACKLISTED = "blacklisted"
    REMOTE_ISLAND = "remote_island"
    DISCOUNT_CANDIDATE = "discount_candidate"


MESSAGES: dict[Reason, str] = {
    Reason.NP_NG_1: ("初回注文だったが、選択中の配送方法が「代引き」を指定できないため、"
                     "注文ステータスを「与信NG」、「要対応」に変更"),
    Reason.NP_NG_2: "注文二回目以降のため、注文ステータスを「与信NG」、「要対応」に変更",
    Reason.NP_NG_3: "選択中の配送方法が「代引き」を指定できないため、注文ステータスを「与信NG」、「要対応」に変更",
    Reason.NP_NG_4: "注文ステータスを「与信NG」、「要対応」に変更",
    Reason.NP_UNKNOWN: "与信結果「識別番号」は、識別できないステータスです。",
    Reason.BLACKLIST_CANDIDATE: "ブラックリスト客候補",
    Reason.PAYMENT_FAILED: "たまご決済失敗",
    Reason.BLACKLISTED: "ブラックリスト客",
    Reason.REMOTE_ISLAND: "離島からのご注文",
    Reason.DISCOUNT_CANDIDATE: "定期割引候補",
}
"""Fixed messages, word for word (seed 001). The amount mismatch carries amounts: AMOUNT_MISMATCH_RE."""
AMOUNT_MISMATCH_RE = re.compile(r"^入金額【(?P<paid>[\d,]+)円?】が注文金額【(?P<total>[\d,]+)円?】と一致しません。$")
NP_NG = (Reason.NP_NG_1, Reason.NP_NG_2, Reason.NP_NG_3, Reason.NP_NG_4)
_BY_MESSAGE = {message: reason for reason, message in MESSAGES.items()}


def classify(message: str) -> Reason | None:
    """The reason a 要対応コメント line states; ``None`` for a message no rule knows (whole line, exact)."""
    text = message.strip()
    if text in _BY_MESSAGE:
        return _BY_MESSAGE[text]
    if AMOUNT_MISMATCH_RE.match(text):
        return Reason.AMOUNT_MISMATCH
    return None


def mismatch_amounts(message: str) -> tuple[int, int] | None:
    """(入金額, 注文金額) of an amount-mismatch message."""
    found = AMOUNT_MISMATCH_RE.match(message.strip())
    if found is None:
        return None
    return int(found["paid"].replace(",", "")), int(found["total"].replace(",", ""))
