"""Amazon's data in the sandbox: FBA inventory and MCF fulfillment orders.

The HTTP API over it is sandbox/spapi.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.world import World


class AmazonStore:
    def __init__(self, world: World) -> None:
        self.world = world
        self.fba_stock: dict[str, int] = {}

    def tick(self, now: datetime) -> None:
        """Advance fulfillment orders and packages to ``now``."""

    def snapshot(self) -> dict[str, object]:
        return {"fba_stock": dict(self.fba_stock), "fulfillment_orders": []}
