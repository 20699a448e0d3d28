"""The BOSS order detail page, and its one action the robot may take: `Order Deletion`.

There is deliberately no way to press `Order Cancellation` here (and no selector for it): the
manual says "Click Order Deletion, not Order Cancellation".
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from playwright.sync_api import Dialog
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pydantic import BaseModel

from kuroko.errors import BusinessRuleError, OrderMismatch, PageChanged, SessionExpired
from pages.boss.site import BossSite


class OrderNotInBoss(BusinessRuleError):
    """The order is not on the BOSS list (after the bounded wait), or BOSS has no page for it."""

    code = "order_not_in_boss"


DELETED = "Deleted"
"""The state BOSS shows once `Order Deletion` went through."""


def is_deletion_dialog(message: str, order_number: str) -> bool:
    """The confirm dialog of `Order Deletion` for this order, and nothing that speaks of cancelling."""
    text = message.lower()
    return "order deletion" in text and order_number in message and "cancel" not in text


class BossOrderView(BaseModel):
    order_number: str
    state: str
    """The state field as BOSS shows it (e.g. `Confirmation to be`, `Deleted`)."""


class BossOrderDetail:
    def __init__(self, site: BossSite, *, timeout_ms: int = 10_000) -> None:
        self.site = site
        self.timeout_ms = timeout_ms

    def path(self, order_number: str) -> str:
        return f"/orders/{quote(order_number, safe='')}"

    def is_open(self, order_number: str) -> bool:
        return urlsplit(self.site.page.url).path == self.path(order_number)

    def open(self, order_number: str) -> BossOrderView:
        """Open the order's detail page and read what it shows."""
        self.site.goto(self.path(order_number))
        return self.read(order_number)

    def read(self, order_number: str) -> BossOrderView:
        """Read the detail page that is open; it must be this order's."""
        page_heading = self.site.el("order_detail.heading").or_(self.site.el("not_found.heading"))
        try:
            page_heading.first.wait_for(state="visible", timeout=self.timeout_ms)
        except PlaywrightTimeout as exc:
            raise PageChanged(
                f"boss: neither the Order Detail nor the 'Order not found' page appeared for {order_number} "
                f"(at {self.site.page.url.split('?')[0]}); the page may have changed (selectors/boss.yaml)"
            ) from exc
        if self.site.el("not_found.heading").count() > 0:
            raise OrderNotInBoss(f"BOSS has no order {order_number} (its detail page says 'Order not found')")
        shown = self.site.expect_visible("order_detail.order_number", self.timeout_ms).first.inner_text().strip()
        if shown != order_number:
            raise OrderMismatch(f"the BOSS detail page shows order {shown!r}, not {order_number}; nothing was done")
        state = self.site.expect_visible("order_detail.state", self.timeout_ms).first.inner_text().strip()
        return BossOrderView(order_number=shown, state=state)

    def delete_order(self, order_number: str) -> BossOrderView:
        """Press `Order Deletion` for this order and return the Deleted view.

        Reconciles first: an order the page already shows as Deleted is returned as it is, without a
        click. If the site asked for a login instead of deleting, logs in and tries once more.
        """
        for _ in range(2):
            view = self.read(order_number) if self.is_open(order_number) else self.open(order_number)
            if view.state == DELETED:
                return view
            self._press_deletion(order_number, view)
            if not self.site.is_login_page():
                return self.read(order_number)
            self.site.login()  # back on the detail page through ?next=
        raise SessionExpired(f"boss: the session ended twice while deleting {order_number}; it was not deleted")

    def _press_deletion(self, order_number: str, view: BossOrderView) -> None:
        button = self.site.el("order_detail.delete_button")
        try:
            button.first.wait_for(state="visible", timeout=self.timeout_ms)
        except PlaywrightTimeout as exc:
            raise PageChanged(
                f"boss: order {order_number} (state {view.state!r}) shows no 'Order Deletion' button within "
                f"{self.timeout_ms} ms; nothing was clicked (selectors/boss.yaml order_detail.delete_button)"
            ) from exc
        if button.count() != 1:
            raise PageChanged(f"boss: {button.count()} 'Order Deletion' buttons on order {order_number}; "
                              "expected exactly one, nothing was clicked")
        seen: list[str] = []

        def answer(dialog: Dialog) -> None:
            seen.append(dialog.message)
            if is_deletion_dialog(dialog.message, order_number):
                dialog.accept()
            else:
                dialog.dismiss()

        page = self.site.page
        page.once("dialog", answer)
        try:
            button.click()
        finally:
            page.remove_listener("dialog", answer)
        if seen and not is_deletion_dialog(seen[0], order_number):
            raise PageChanged(
                f"boss: 'Order Deletion' on order {order_number} asked {seen[0]!r}, which is not the deletion "
                "confirmation; dismissed it, nothing was changed"
            )
        done = self.site.el("order_detail.state").get_by_text(DELETED, exact=True).or_(self.site.el("login.user"))
        try:
            done.first.wait_for(state="visible", timeout=self.timeout_ms)
        except PlaywrightTimeout as exc:
            raise PageChanged(
                f"boss: after 'Order Deletion' on order {order_number} the page ({page.title()!r}) does not show "
                f"the state {DELETED!r}; check the order in BOSS before trying again"
            ) from exc
