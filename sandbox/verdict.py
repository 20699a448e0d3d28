"""What the world's own record says the robot did twice: the sandbox's audit and state, read after a
day (the crash harness, several robots, the benchmark). Nothing here knows the robot's ledger."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

MARKER = re.compile(r"\[kuroko:[^\]]+\]")
"""The robot's own marker at the end of each note it writes."""
CHANGES = {
    ("rms", "confirm_order"), ("rms", "mail_sent"), ("rms", "shipping_set"),
    ("boss", "order_deleted"), ("boss", "order_cancelled"),
    ("zendesk", "comment_added"), ("zendesk", "status_changed"), ("zendesk", "tags_changed"),
    ("zendesk", "tickets_merged"), ("zendesk", "merge_failed"),
    ("amazon", "fulfillment_order_created"), ("amazon", "fulfillment_order_cancelled"),
}
"""What counts as the robot changing the world (sandbox audit); mails arriving do not."""
SHIPPING_MAILS = ("発送メール JM", "発送メール JS")


def order_of(event: dict[str, Any]) -> str | None:
    """The Rakuten order an audit event is about (an MCF order's id names it too)."""
    if event.get("order_number"):
        return str(event["order_number"])
    sfo = event.get("seller_fulfillment_order_id")
    return str(sfo).removeprefix("RKT-") if sfo else None


def changes_by_order(audit: list[dict[str, Any]]) -> dict[str, Counter[tuple[str, str]]]:
    done: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for event in audit:
        number = order_of(event)
        if number and (event["system"], event["action"]) in CHANGES:
            done[number][(event["system"], event["action"])] += 1
    return done


def side_effects_twice(state: dict[str, Any], audit: list[dict[str, Any]]) -> list[str]:
    """Every side effect done more than once (or never allowed), in words; empty: none."""
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    for ticket in state["zendesk"]["tickets"]:
        markers = Counter(m for c in ticket["comments"] for m in MARKER.findall(c["body"]))
        for tag, n in markers.items():
            check(n == 1, f"ticket #{ticket['id']}: robot note {tag} written {n} times")
    done_by_order = changes_by_order(audit)
    mcf_by_order = Counter(o["displayable_order_id"] for o in state["amazon"]["fulfillment_orders"])
    for world in state["orders"]:
        number = world["order_number"]
        done = done_by_order[number]
        mails = Counter(m["template"] for m in world["mails"])
        check(world["confirm_clicks"] <= 1, f"{number}: 注文確認 clicked {world['confirm_clicks']} times")
        check(mails["サンクスメール"] <= 1, f"{number}: サンクスメール sent {mails['サンクスメール']} times")
        shipping = sum(mails[t] for t in SHIPPING_MAILS)
        check(shipping <= 1, f"{number}: 発送メール sent {shipping} times")
        check(mcf_by_order[number] <= 1 and done[("amazon", "fulfillment_order_created")] <= 1,
              f"{number}: {mcf_by_order[number]} MCF orders")
        check(done[("boss", "order_deleted")] <= 1,
              f"{number}: deleted in BOSS {done[('boss', 'order_deleted')]} times")
        check(done[("boss", "order_cancelled")] == 0, f"{number}: Order Cancellation clicked in BOSS")
        check(done[("rms", "shipping_set")] <= 1, f"{number}: RMS shipping fields set {done[('rms', 'shipping_set')]} "
                                                  "times")
    return problems
