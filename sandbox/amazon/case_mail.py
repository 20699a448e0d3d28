"""Amazon's mails about a Seller Central case, as they reach the robot: Amazon writes to the seller's
mailbox, which forwards them, unchanged, to the desk's claims address in Zendesk (seed 004).

Each meaning (acknowledged, paid, refused, asks for more) has several phrasings in English and in
Japanese; the subject carries the case id in one of Amazon's forms (half- or full-width digits).
The robot's rules must read every one of them, and send anything else to a person.
"""

from __future__ import annotations

from typing import Any

CLAIMS_ADDRESS = "claims@kuroko.zendesk.com"
"""The desk's address that receives only Amazon's forwarded case mails (KUROKO_CLAIMS_RECIPIENT)."""
REGISTERED_SENDER = ("Kuroko Shop", "amazon-cases@kuroko-shop.example")
"""The seller's mailbox that forwards Amazon's mails (KUROKO_CLAIMS_SENDERS)."""
FORWARDING_AGENT = ("Hanako Sato", "hanako@kuroko-shop.example")
"""An agent who forwards a mail by hand (Zendesk agent forwarding); also registered."""
AMAZON_SENDER = ("Amazon Seller Support", "seller-support@amazon.co.jp")

SUBJECTS = {
    "en": ("Amazon Seller Support: Case ID {case} updated", "[Case {case}] Your reimbursement request",
           "RE: Case {case}: Multi-Channel Fulfillment lost parcel"),
    "ja": ("【ケースID：{case_wide}】お問い合わせへの回答", "Amazon出品サービス ケース {case} について",
           "Re: ケース{case_wide}：マルチチャネルの補てん申請"),
}

BODIES: dict[str, dict[str, tuple[str, ...]]] = {
    "ack": {
        "en": (
            "Hello,\n\nWe have received your case about Multi-Channel Fulfillment order {order}. A specialist will "
            "review it and reply within 3 business days.\n\nAmazon Seller Support",
            "Thank you for contacting Amazon Seller Support. Your case has been opened (order {order}); we will "
            "get back to you soon.",
            "This is to confirm that we received your request regarding {order}. Your case is being reviewed.",
        ),
        "ja": (
            "お問い合わせいただきありがとうございます。マルチチャネル注文 {order} に関するケースを受け付けました。"
            "担当者が確認のうえ、3営業日以内にご連絡いたします。",
            "{order} についてのお問い合わせを承りました。現在、担当部署にて確認しております。",
            "ケースを受け付けました（注文番号 {order}）。調査が完了し次第ご連絡いたします。",
        ),
    },
    "pay": {
        "en": (
            "Hello,\n\nWe have investigated your case for order {order}. The unit has been reimbursed: ¥{amount_comma} "
            "will appear in your next settlement.\n\nAmazon Seller Support",
            "We have issued a reimbursement of JPY {amount} for the lost package of order {order}.",
            "Following our review, we have reimbursed you {amount_comma}円 for order {order}. No further action "
            "is needed.",
        ),
        "ja": (
            "ご連絡ありがとうございます。注文 {order} の紛失について調査した結果、"
            "￥{amount_comma}を補てんいたしました。"
            "次回の支払いに反映されます。",
            "マルチチャネル注文 {order} につきまして、{amount_comma}円の補てんを行いました。",
            "調査の結果、対象商品の払い戻しを完了いたしました（補てん額：¥{amount}）。注文番号：{order}",
        ),
    },
    "refuse": {
        "en": (
            "Hello,\n\nWe have reviewed your case for order {order}. This shipment is not eligible for "
            "reimbursement because the carrier confirmed delivery.\n\nAmazon Seller Support",
            "After investigating order {order}, we are unable to reimburse this item.",
            "Your reimbursement request for {order} has been denied: the claim window had passed.",
        ),
        "ja": (
            "注文 {order} について確認いたしましたが、配送業者により配達完了が確認されているため、"
            "補てんの対象外となります。",
            "調査の結果、誠に恐れ入りますが、本件は補てんいたしかねます。注文番号：{order}",
            "ご依頼いただいた {order} の補てん申請は承認されませんでした。",
        ),
    },
    "ask_more": {
        "en": (
            "Hello,\n\nTo continue investigating order {order}, please provide proof of the refund to your "
            "customer (customer name and address) within 7 days.\n\nAmazon Seller Support",
            "We need additional information about order {order}: the invoice of the off-Amazon order.",
            "Could you provide photos of the damaged item and its box for order {order}? Please reply within 7 days.",
        ),
        "ja": (
            "注文 {order} の調査を進めるため、購入者様への返金を証明する書類を7日以内にご提供ください。",
            "恐れ入りますが、{order} の請求書（お客様のお名前とご住所が記載されたもの）をお送りください。",
            "追加の情報が必要です。破損した商品と箱の写真をご提出ください（注文番号 {order}）。",
        ),
    },
}
MEANINGS = tuple(BODIES)
LANGUAGES = ("en", "ja")


def _wide(text: str) -> str:
    """Full-width digits (NFKC gives the half-width ones back)."""
    return text.translate({ord(d): chr(ord(d) - ord("0") + ord("０")) for d in "0123456789"})


def case_mail(meaning: str, *, case_id: str, order: str, amount: int | None = None, language: str = "en",
              phrasing: int = 0) -> tuple[str, str]:
    """(subject, body) of Amazon's mail with this meaning, in ``language``, phrasing ``phrasing``."""
    bodies = BODIES[meaning][language]
    subjects = SUBJECTS[language]
    fields: dict[str, Any] = {"case": case_id, "case_wide": _wide(case_id), "order": order,
                              "amount": amount if amount is not None else 0,
                              "amount_comma": f"{amount or 0:,}"}
    subject = subjects[phrasing % len(subjects)].format(**fields)
    body = bodies[phrasing % len(bodies)].format(**fields)
    return subject, forwarded(body)


def forwarded(body: str) -> str:
    """The text of a mail forwarded unchanged from the seller's mailbox."""
    return f"---------- Forwarded message ---------\nFrom: {AMAZON_SENDER[0]} <{AMAZON_SENDER[1]}>\n\n{body}"
