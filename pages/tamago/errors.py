"""たまご-specific business errors (the engine's tree: kuroko/errors.py)."""

from __future__ import annotations

from kuroko.errors import BusinessRuleError


class OrderVanished(BusinessRuleError):
    """The order is gone: 注文詳細 says 「注文が見つかりません」 (deleted between the search and the
    visit, or never there). Nothing was changed; a person should look at what happened to it."""

    code = "order_vanished"

    def __init__(self, order_id: str, message: str | None = None) -> None:
        super().__init__(message or (
            f"たまご order {order_id} is gone: its page says 注文が見つかりません (deleted after it was listed "
            "as 要対応?). Nothing was changed; please check what happened to it in たまご"))
        self.order_id = order_id
