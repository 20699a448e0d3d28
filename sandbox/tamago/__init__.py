"""The sandbox's たまごリピート wing: the subscription cart's admin screens (要対応, 注文修正, 顧客検索)."""

from sandbox.tamago.app import admin_router, create_app

__all__ = ["admin_router", "create_app"]
