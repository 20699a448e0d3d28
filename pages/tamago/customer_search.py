"""顧客検索: customers matching every given field, with their ブラックリスト flag and subscriptions."""

from __future__ import annotations

import re

from kuroko.errors import PageChanged, UnknownValue
from pages.tamago.models import CustomerMatch, CustomerSubscription
from pages.tamago.page import TamagoPage

ROW_CELLS = {
    "customer_id": "customers.customer_id", "name": "customers.customer_name", "phone": "customers.phone_cell",
    "postal_code": "customers.postal_code_cell", "address": "customers.address", "blacklist": "customers.blacklist",
    "sub_id": "customers.subscription_id", "sub_status": "customers.subscription_status",
    "sub_interval": "customers.subscription_interval",
}
REQUIRED = ("customer_id", "name", "phone", "postal_code", "address", "blacklist")
SUB_STATUS = {"継続中": True, "停止中": False}


class TamagoCustomerSearch(TamagoPage):
    def find(self, *, phone: str | None = None, postal_code: str | None = None,
             name: str | None = None) -> list[CustomerMatch]:
        """顧客検索 with the given fields (all must match; たまご ignores hyphens and spaces)."""
        criteria = {"phone": phone or "", "postal_code": postal_code or "", "name": name or ""}
        if not any(v.strip() for v in criteria.values()):
            raise ValueError("顧客検索 needs at least one of phone, postal_code, name")
        return self._act(lambda: self._find_once(criteria))

    def _find_once(self, criteria: dict[str, str]) -> list[CustomerMatch]:
        self.site.goto("/customers")
        self._visible("customers.heading")
        for key, value in criteria.items():
            self._visible(f"customers.{key}").first.fill(value)
        self._submit("customers.submit")
        refused = self.site.el("customers.error")
        if refused.count():
            raise UnknownValue(f"tamago: 顧客検索 refused the search: {refused.first.inner_text().strip()}")
        self._visible("customers.table")
        fields, tables = self.site.read_test_ids({"count": "customers.count"},
                                                 {"rows": ("customers.row", ROW_CELLS)})
        count = self._int(self._one("customers.count", fields["count"]), "customers.count")
        matches = [self._match(row) for row in tables["rows"]]
        if len(matches) != count:
            raise PageChanged(f"tamago: 顧客検索 says {count} result(s) but lists {len(matches)} "
                              "(selectors/tamago.yaml customers.row)")
        return matches

    def _match(self, row: dict[str, list[str]]) -> CustomerMatch:
        for cell in REQUIRED:
            if not row.get(cell):
                raise PageChanged(f"tamago: '{ROW_CELLS[cell]}' is missing from a row of 顧客検索 "
                                  "(selectors/tamago.yaml)")
        ids, statuses, intervals = row.get("sub_id", []), row.get("sub_status", []), row.get("sub_interval", [])
        if not len(ids) == len(statuses) == len(intervals):
            raise PageChanged("tamago: 顧客検索's 定期 column does not show an id, a status and an interval "
                              "for each subscription")
        subscriptions = []
        for sub_id, status, interval in zip(ids, statuses, intervals, strict=True):
            if status not in SUB_STATUS:
                raise PageChanged(f"tamago: a subscription's status shows {status!r}, not 継続中 or 停止中")
            days = re.fullmatch(r"(\d+)日ごと", interval)
            if days is None:
                raise PageChanged(f"tamago: a subscription's お届け間隔 shows {interval!r}, not 「30日ごと」")
            subscriptions.append(CustomerSubscription(subscription_id=sub_id, active=SUB_STATUS[status],
                                                      interval_days=int(days.group(1))))
        blacklist = row["blacklist"][0]
        return CustomerMatch(
            customer_id=row["customer_id"][0], name=row["name"][0], phone=row["phone"][0],
            postal_code=row["postal_code"][0], address=row["address"][0],
            blacklisted=blacklist == "ブラックリスト客", subscriptions=subscriptions,
        )
