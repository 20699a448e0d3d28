"""The floor: what an MCF order costs with nothing of the robot around it.

The same page loads, form posts, Zendesk and SP-API calls procedure A makes for an order that ships
through Amazon MCF, done by a bare script: raw Playwright on the same headless Chromium, zenpy and
python-amazon-sp-api called directly. No ledger, no rules, no reconciliation reads, no tracing, no
evidence, no client-side quota. ``make bench`` runs it in the same sandbox right after the robot's
day, so the robot's per-order time can be read against it.

Per order, like the robot's metrics: the seconds of the three moments the order is worked (created
and noted; shipping mail and 発送明細 once Amazon shipped; RMS 完了 and the ticket solved), summed;
the clock moves between them untimed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, Request, sync_playwright

from kuroko.browser import CHROMIUM_FLAGS
from kuroko.settings import Settings
from sandbox.process import SandboxAdmin

FLOOR_SKU = "SIM-DATA-30D-20GB"


@dataclass
class FloorOrder:
    order_number: str
    ticket_id: int
    seconds: float = 0.0
    page_loads: Counter[str] = field(default_factory=Counter)


class Floor:
    """One browser with a BOSS and an RMS page, a zenpy client and an SP-API client, signed in."""

    def __init__(self, settings: Settings) -> None:
        from kuroko.settings import load
        from pages.boss.settings import BossSettings
        from pages.rakuten.settings import RmsSettings
        from services.fulfillment import AmazonFulfillment
        from services.helpdesk import ZendeskHelpdesk

        self.settings = settings
        self.boss_settings = load(BossSettings)
        self.rms_settings = load(RmsSettings)
        # The libraries' own clients, built the way the robot points them at the sandbox (the
        # wrappers' logic — quotas, retries, counting — is not used).
        self.helpdesk = ZendeskHelpdesk()
        self.zenpy = self.helpdesk._zenpy
        if self.helpdesk._forced is not None:  # zenpy's own override for a Zendesk not on zendesk.com
            os.environ["ZENPY_FORCE_SCHEME"], os.environ["ZENPY_FORCE_NETLOC"] = self.helpdesk._forced
        self.amazon = AmazonFulfillment(throttle=False)
        self.spapi = self.amazon._client
        self.marketplace = self.amazon.settings.marketplace_id
        self._playwright = sync_playwright().start()
        shell = settings.headless_shell_path
        executable = shell if shell.exists() else settings.browser_path
        self._browser = self._playwright.chromium.launch(executable_path=str(executable), headless=True,
                                                         args=CHROMIUM_FLAGS)
        self.loads: Counter[str] = Counter()
        self.pages: dict[str, Page] = {}
        for site in ("boss", "rakuten"):
            context = self._browser.new_context(locale="ja-JP", timezone_id=settings.timezone)
            def count(request: Request, site: str = site) -> None:
                self._count(site, request)

            context.on("request", count)
            page = context.new_page()
            page.on("dialog", lambda d: d.accept())
            self.pages[site] = page

    def _count(self, site: str, request: Request) -> None:
        if request.resource_type == "document":
            self.loads[site] += 1

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()

    # --- signing in (untimed: the robot keeps its logins between orders too) -----------------
    def sign_in(self) -> None:
        boss = self.pages["boss"]
        boss.goto(f"{self.boss_settings.boss_url}/orders")
        self._boss_sign_in()
        self.pages["rakuten"].goto(f"{self.rms_settings.rms_url}/login")
        self._rms_sign_in()

    def _boss_sign_in(self) -> None:
        boss = self.pages["boss"]
        boss.get_by_label("User ID", exact=True).fill(self.boss_settings.boss_user)
        boss.get_by_label("Password", exact=True).fill(self.boss_settings.boss_password.get_secret_value())
        with boss.expect_navigation():
            boss.get_by_role("button", name="Log in", exact=True).click()

    def _rms_sign_in(self) -> None:
        rms = self.pages["rakuten"]
        s = self.rms_settings
        rms.get_by_label("R-Login ID", exact=True).fill(s.rms_user)
        rms.get_by_label("パスワード", exact=True).fill(s.rms_password.get_secret_value())
        with rms.expect_navigation():
            rms.get_by_role("button", name="次へ", exact=True).click()
        rms.get_by_label("ユーザID", exact=True).fill(s.rms_member_user)
        rms.get_by_label("パスワード", exact=True).fill(s.rms_member_password.get_secret_value())
        with rms.expect_navigation():
            rms.get_by_role("button", name="ログイン", exact=True).click()
        for _ in range(20):
            if not rms.get_by_role("heading", name="お知らせ", exact=True).count():
                break
            ack = rms.get_by_role("button", name="確認しました", exact=True)
            with rms.expect_navigation():
                (ack if ack.count() else rms.get_by_role("button", name="次へ", exact=True)).click()

    # --- the three moments of an MCF order ---------------------------------------------------
    def _rms_order(self, order: FloorOrder) -> Page:
        rms = self.pages["rakuten"]
        rms.goto(f"{self.rms_settings.rms_url}/rms/order/{order.order_number}", wait_until="domcontentloaded")
        if "/login" in rms.url:  # the sandbox's session ended (a day went by): sign in again
            self._rms_sign_in()
        rms.get_by_test_id("order-number").inner_text()
        return rms

    def _send_mail(self, rms: Page, template: str, fields: dict[str, str]) -> None:
        rms.get_by_role("button", name="メール送信", exact=True).click()
        rms.get_by_role("radio", name=template, exact=True).check()
        rms.get_by_role("button", name="次へ", exact=True).click()
        for label, value in fields.items():
            rms.get_by_label(label, exact=True).fill(value)
        rms.get_by_role("button", name="送信", exact=True).click()
        rms.get_by_role("status").filter(has_text="メールを送信しました").wait_for()

    def create(self, order: FloorOrder, now: datetime) -> str:
        """Read the ticket, confirm the order and send the サンクスメール in RMS, create the MCF order,
        note it on the ticket, delete the order in BOSS. Returns the MCF order id."""
        ticket = self.zenpy.tickets(id=order.ticket_id)
        list(self.zenpy.tickets.comments(ticket=order.ticket_id))
        rms = self._rms_order(order)
        address = {t: rms.get_by_test_id(t).inner_text() for t in
                   ("buyer-name", "ship-postal-code", "ship-prefecture", "ship-city", "ship-address")}
        rms.get_by_role("button", name="注文確認", exact=True).click()
        rms.get_by_role("status").filter(has_text="注文確認を行いました").wait_for()
        self._send_mail(rms, "サンクスメール", {})
        sfo = f"RKT-{order.order_number}"
        destination = {"name": address["buyer-name"], "addressLine1": address["ship-city"] + address["ship-address"],
                       "stateOrRegion": address["ship-prefecture"],
                       "postalCode": address["ship-postal-code"].lstrip("〒").strip(), "countryCode": "JP"}
        items = [{"sellerSku": FLOOR_SKU, "sellerFulfillmentOrderItemId": "1", "quantity": 1}]
        self.spapi.get_fulfillment_preview(marketplaceId=self.marketplace, address=destination, items=items,
                                           shippingSpeedCategories=["Standard"])
        self.spapi.create_fulfillment_order(
            marketplaceId=self.marketplace, destinationAddress=destination, items=items,
            fulfillmentPolicy="FillOrKill", sellerFulfillmentOrderId=sfo, displayableOrderId=order.order_number,
            displayableOrderDate=now.isoformat(), displayableOrderComment="ご注文ありがとうございます。",
            shippingSpeedCategory="Standard", fulfillmentAction="Ship")
        ticket.comment = self._note(f"MCF order {sfo} created. [floor]")
        ticket.status = "pending"
        self.zenpy.tickets.update(ticket)
        boss = self.pages["boss"]
        boss.goto(f"{self.boss_settings.boss_url}/orders/{order.order_number}", wait_until="domcontentloaded")
        if "/login" in boss.url:
            self._boss_sign_in()
        boss.get_by_role("button", name="Order Deletion", exact=True).click()
        boss.wait_for_load_state("domcontentloaded")
        boss.get_by_label("State", exact=True).inner_text()
        return sfo

    def ship(self, order: FloorOrder, sfo: str, ship_date: str) -> None:
        """Read the MCF order's package, send the 発送メール and add the 発送明細 in RMS."""
        found = self.spapi.get_fulfillment_order(sfo).payload
        package = (found.get("fulfillmentShipments") or [{}])[0].get("fulfillmentShipmentPackage") or [{}]
        tracking, carrier = package[0].get("trackingNumber"), package[0].get("carrierCode")
        if not tracking or not carrier:
            raise RuntimeError(f"floor: MCF order {sfo} has not shipped yet ({found.get('fulfillmentOrder')})")
        company = {"YAMATO": "ヤマト運輸", "SAGAWA": "佐川急便", "JAPAN_POST": "日本郵便"}.get(carrier, carrier)
        rms = self._rms_order(order)
        self._send_mail(rms, "発送メール JM", {"発送日": ship_date, "配送会社": company,
                                             "お荷物伝票番号": tracking})
        rms.get_by_label("配送会社", exact=True).select_option(label=company)
        rms.get_by_label("発送日", exact=True).fill(ship_date)
        rms.get_by_label("お荷物伝票番号", exact=True).fill(tracking)
        rms.get_by_role("button", name="発送明細を追加", exact=True).click()
        rms.get_by_role("status").filter(has_text="発送明細を追加しました").wait_for()

    def close_ticket(self, order: FloorOrder) -> None:
        """RMS shows 完了: note it and solve the ticket."""
        rms = self._rms_order(order)
        rms.get_by_test_id("order-status").inner_text()
        ticket = self.zenpy.tickets(id=order.ticket_id)
        ticket.comment = self._note("Shipment completion confirmed in RMS (完了). [floor]")
        ticket.status = "solved"
        self.zenpy.tickets.update(ticket)

    @staticmethod
    def _note(text: str) -> Any:
        from zenpy.lib.api_objects import Comment

        return Comment(body=text, public=False)


def run_floor(admin: SandboxAdmin, settings: Settings, *, orders: int = 8) -> dict[str, Any]:
    """Place ``orders`` MCF orders in the sandbox and take each through its three moments."""
    from kuroko.ops.bench import percentile

    zone = ZoneInfo(settings.timezone)
    admin.set_stock(rsl={FLOOR_SKU: 0}, fba={FLOOR_SKU: 10_000})
    placed = [admin.place_order({FLOOR_SKU: 1})["order_number"] for _ in range(orders)]
    admin.advance(minutes=31)
    floor = Floor(settings)
    work: list[FloorOrder] = []
    try:
        for number in placed:
            found = list(floor.zenpy.search(number, type="ticket"))
            work.append(FloorOrder(number, found[0].id))
        floor.sign_in()
        floor.loads.clear()
        before = admin.summary()["request_counts"]

        def timed(order: FloorOrder, act: Any) -> Any:
            loads = Counter(floor.loads)
            t0 = time.perf_counter()
            result = act()
            order.seconds += time.perf_counter() - t0
            order.page_loads.update(floor.loads - loads)
            return result

        now = datetime.fromisoformat(admin.get("/admin/clock")["now"])
        mcf = {o.order_number: timed(o, lambda o=o: floor.create(o, now)) for o in work}
        admin.advance(days=1)
        ship_date = datetime.fromisoformat(admin.get("/admin/clock")["now"]).astimezone(zone).date().isoformat()
        for o in work:
            timed(o, lambda o=o: floor.ship(o, mcf[o.order_number], ship_date))
        admin.advance(days=1, hours=1)
        for o in work:
            timed(o, lambda o=o: floor.close_ticket(o))
        after = admin.summary()["request_counts"]
    finally:
        floor.close()
    seconds = [o.seconds for o in work]
    return {
        "orders": len(work),
        "median_s": round(statistics.median(seconds), 3),
        "p95_s": round(percentile(seconds, 0.95), 3),
        "boss_page_loads": round(statistics.fmean(o.page_loads["boss"] for o in work), 1),
        "rms_page_loads": round(statistics.fmean(o.page_loads["rakuten"] for o in work), 1),
        "zendesk_requests": round((after.get("zendesk", 0) - before.get("zendesk", 0)) / len(work), 1),
        "spapi_requests": round((after.get("spapi", 0) - before.get("spapi", 0)) / len(work), 1),
    }
