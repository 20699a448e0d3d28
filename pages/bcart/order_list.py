"""受注一覧 → 「処理を選択」→「メール送信」→ template → 確認画面 → 送信する: the only way to send
B-cart's template mails (there is no API for them, and B-cart keeps no record of what was sent:
the procedure keeps its own)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import urlencode

from kuroko.errors import OrderMismatch, PageChanged, UnknownValue
from pages.bcart.site import BcartSite


class MailTemplate(StrEnum):
    """B-cart's template mails, by the names its メールテンプレート list shows."""

    OUT_OF_STOCK = "欠品のお知らせ"
    PAYMENT_REQUEST = "入金案内"
    PAYMENT_CONFIRMED = "振り込み確認"
    SHIPPED = "発送のお知らせ"


class BcartOrderList:
    def __init__(self, site: BcartSite) -> None:
        self.site = site

    def send_mail(self, order_ids: Sequence[int], template: MailTemplate | str) -> list[int]:
        """Send ``template`` to the customers of ``order_ids`` (one mail per order) in one go.
        Returns the order ids the confirmation page listed and B-cart then sent to.

        Refuses before sending when an order is not on the list (OrderMismatch) or the template is
        not one of the shop's (UnknownValue). One call sends once: the caller records the send
        before and confirms it after (B-cart has no history to check afterwards)."""
        ids = [int(i) for i in dict.fromkeys(order_ids)]
        if not ids:
            raise ValueError("send_mail needs at least one order id")
        name = str(template.value if isinstance(template, MailTemplate) else template)
        return self.site.act(lambda: self._send_once(ids, name), f"メール送信 ({name})")

    def _send_once(self, ids: list[int], template: str) -> list[int]:
        site = self.site
        site.goto("/order?" + urlencode({"ids": ",".join(map(str, ids))}))
        site.visible("order_list.heading")
        missing = [i for i in ids if not site.el("order_list.select_order", order_id=str(i)).count()]
        if missing:
            raise OrderMismatch(f"bcart: 受注一覧 does not show order(s) {', '.join(map(str, missing))}; "
                                "no mail was sent")
        for order_id in ids:
            site.el("order_list.select_order", order_id=str(order_id)).check()
        site.visible("order_list.action").select_option(label="メール送信")
        site.submit("order_list.run")
        if site.el("mail.heading").count() == 0 and site.el("order_list.error").count():
            raise PageChanged(f"bcart: 受注一覧 refused メール送信: {site.alert_text('order_list.error')}")
        select = site.visible("mail.template").first
        options: list[str] = select.evaluate("s => Array.from(s.options).map(o => o.textContent.trim())")
        if template not in options:
            raise UnknownValue(f"bcart: no mail template {template!r}; this shop's are: "
                               f"{', '.join(o for o in options if o and o != '選択してください')}")
        select.select_option(label=template)
        site.submit("mail.to_confirm")
        site.visible("mail_confirm.heading")
        shown_template = site.texts("mail_confirm.template")
        listed = [int(t) for t in site.texts("mail_confirm.row_order_id") if t.isdigit()]
        if shown_template != [template] or sorted(listed) != sorted(ids):
            raise PageChanged(f"bcart: the confirmation page shows template {shown_template} for orders {listed}, "
                              f"not {template!r} for {ids}; nothing was sent")
        site.submit("mail_confirm.send")
        site.visible("order_list.mail_sent_message")
        return listed
