"""Buyers' questions as they reach the shop's Zendesk: Japanese mails from Rakuten's masked buyer
addresses (…@pc.fw.rakuten.ne.jp), some naming the order number in full-width digits, some naming
none, some about an order the shop never had, some not about delivery at all."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.world import World
    from sandbox.zendesk.store import Ticket

KINDS = ("where", "where_fullwidth", "where_no_number", "unknown_order", "not_delivery", "broken",
         "reply_to_order_mail", "not_a_buyer")
"""What a question may be (POST /admin/zendesk/questions ``kind``)."""
FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def fullwidth(text: str) -> str:
    return text.translate(FULLWIDTH)


def unknown_order_number(rng: random.Random) -> str:
    return f"999999-20261119-{rng.randrange(10**9, 10**10)}"


def ask(world: World, kind: str, order_number: str | None = None, *, rng: random.Random | None = None) -> Ticket:
    """One buyer mail of ``kind`` about ``order_number`` (a placed order; ignored for unknown_order)."""
    rng = rng or world.rng
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; one of {', '.join(KINDS)}")
    if kind == "not_a_buyer":
        return world.zendesk.receive_mail(subject="SIMカードの卸価格について",
                                          body="御社のSIMの卸価格を教えてください。",
                                          sender=("卸 業者", "sales@wholesale.example.jp"))
    if kind == "unknown_order":
        number = unknown_order_number(rng)
        sender = ("佐藤 花子", f"q{rng.randrange(10_000, 99_999)}@pc.fw.rakuten.ne.jp")
        return world.zendesk.receive_mail(subject="荷物が届きません",
                                          body=f"注文番号 {fullwidth(number)} のSIMがまだ届きません。"
                                               "配送状況を教えてください。",
                                          sender=sender)
    if order_number is None or order_number not in world.orders:
        raise ValueError(f"no order {order_number!r} to ask about")
    order = world.orders[order_number]
    sender = (order.buyer.name, order.buyer.email)
    subject, body = {
        "where": ("商品の配送状況について",
                  f"注文番号 {order_number} の商品はいつ届きますか？追跡番号を教えてください。"),
        "where_fullwidth": ("荷物が届きません", f"注文番号：{fullwidth(order_number)}\nSIMカードがまだ届きません。"
                                           "配送状況を教えていただけますか。"),
        "where_no_number": ("SIMカードはいつ届きますか",
                            "先日注文したSIMカードがまだ届きません。いつ届くか教えてください。"),
        "not_delivery": ("請求書の発行について", f"注文番号 {order_number} の領収書を発行していただけますか。"),
        "broken": ("届いたSIMが壊れていました", f"注文番号 {fullwidth(order_number)} のSIMカードが破損していました。"
                                          "返品したいです。"),
        "reply_to_order_mail": ("Re: [Rakuten Marketplace] Order Confirmation (automatic email)",
                                f"> [受注番号] {order_number}\n\nこの注文はいつ発送されますか？"),
    }[kind]
    return world.zendesk.receive_mail(subject=subject, body=body, sender=sender)
