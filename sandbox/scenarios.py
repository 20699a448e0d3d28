"""Seeded, deterministic days of orders (``--scenario NAME --seed N [--orders N]``).

``day`` is a realistic mixed morning: orders arrive over about three hours, some with RSL stock,
most without; some to remote prefectures (MCF slower than two days), some for the voice SIM that
FBA does not stock (office shipment), some eSIM or mixed, a few BOSS never lists, a few
Rakuten mails with the order number missing, some order mails that arrive twice.

``aftersales`` is one order per after-sales case (AFTERSALES_CASES: split shipments, late, lost,
damaged, undeliverable, unknown tracking values, unfulfillable, partial, returns …), each MCF
order's fate scripted before the robot creates it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sandbox.catalog import ESIM_SKUS
from sandbox.world import ORDER_DETAILS_SUBJECT, RAKUTEN_SENDER, World

FBA_STOCK = {"SIM-DATA-30D-20GB": 5000, "SIM-DATA-90D-50GB": 5000, "SIM-VOICE-30D": 0}
MCF_SKUS = ["SIM-DATA-30D-20GB", "SIM-DATA-90D-50GB"]
OFFICE_SKU = "SIM-VOICE-30D"

KINDS: list[tuple[str, float]] = [
    ("in_stock", 0.40),
    ("mcf", 0.22),
    ("mcf_slow", 0.08),
    ("office", 0.07),
    ("esim", 0.06),
    ("mixed", 0.03),
    ("missing_in_boss", 0.03),
    ("unreadable", 0.03),
    ("duplicate_mail", 0.08),
]


def _place(world: World, rng: random.Random, kind: str) -> str:
    """Place one order of ``kind``; returns its order number (or the ticket id for unreadable)."""
    if kind == "unreadable":
        ticket = world.zendesk.receive_mail(
            subject=ORDER_DETAILS_SUBJECT,
            body="ご注文ありがとうございます。\n[受注番号] （表示できませんでした）\n詳細は購入履歴をご確認ください。",
            sender=RAKUTEN_SENDER,
        )
        return f"ticket:{ticket.id}"
    if kind == "in_stock":
        sku = rng.choice([*MCF_SKUS, OFFICE_SKU])
        world.rsl_stock[sku] = world.rsl_stock.get(sku, 0) + 1
        return world.place_order([sku]).order_number
    # Every other kind is an order RSL has no stock for.
    if kind in ("mcf", "duplicate_mail", "missing_in_boss"):
        skus = {rng.choice(MCF_SKUS): rng.choice([1, 1, 1, 2])}
    elif kind == "mcf_slow":
        skus = {rng.choice(MCF_SKUS): 1}
    elif kind == "office":
        skus = {OFFICE_SKU: 1}
    elif kind == "esim":
        skus = {rng.choice(ESIM_SKUS): 1}
    else:  # mixed
        skus = {rng.choice(MCF_SKUS): 1, rng.choice(ESIM_SKUS): 1}
    for sku in skus:
        world.rsl_stock[sku] = 0
    order = world.place_order(
        skus,
        remote=kind == "mcf_slow",
        boss_listed=kind != "missing_in_boss",
    )
    if kind == "duplicate_mail":
        world.zendesk.receive_mail(subject=ORDER_DETAILS_SUBJECT, body=world.order_details_mail(order),
                                   sender=RAKUTEN_SENDER)
    return order.order_number


def day(world: World, seed: int, orders: int | None) -> list[str]:
    count = orders or 60
    rng = random.Random(seed)
    world.amazon.fba_stock.update(FBA_STOCK)
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    # Every kind at least once when the day is big enough, the rest drawn by weight.
    chosen = kinds[:] if count >= len(kinds) else []
    chosen += rng.choices(kinds, weights, k=count - len(chosen))
    rng.shuffle(chosen)
    spacing = timedelta(minutes=180 / max(count, 1))
    placed = []
    for kind in chosen:
        placed.append(_place(world, rng, kind))
        world.advance(spacing)
    return placed


AFTERSALES_CASES: dict[str, dict[str, Any]] = {
    "delivered": {},
    "split": {"shipments": [
        {"after_hours": 20, "packages": [{"skus": {"SIM-DATA-30D-20GB": 1}, "carrier": "YAMATO"},
                                         {"skus": {"SIM-DATA-90D-50GB": 1}, "carrier": "SAGAWA"}]},
        {"after_hours": 44, "packages": [{"carrier": "JAPAN_POST"}]}]},
    "late": {"fate": "late", "deliver_after_days": 3},
    "late_edd_plus_6": {"fate": "late", "deliver_after_days": 6},
    "not_shipped_by_edd": {"shipments": [{"after_hours": 24 * 4, "edd_follows": False}]},
    "lost": {"fate": "lost"},
    "lost_by_carrier": {"fate": "lost_by_carrier"},
    "edd_moved_then_lost": {"fate": "lost", "edd_shift_days": 2},
    "damaged": {"fate": "damaged"},
    "undeliverable": {"fate": "undeliverable"},
    "undeliverable_returned": {"fate": "undeliverable_returned"},
    "delivered_only": {"fate": "delivered_only"},
    "unknown_tracking": {"fate": "unknown"},
    "unfulfillable": {"outcome": "Unfulfillable"},
    "invalid": {"outcome": "Invalid", "outcome_after_hours": 0.5},
    "partial": {"cancelled": {"SIM-DATA-30D-20GB": 1}},
    "return_sellable": {"return_condition": "Sellable"},
    "return_carrier_damaged": {"return_condition": "CarrierDamaged"},
    "return_defective": {"return_condition": "Defective"},
}
"""Each after-sales case, as the plan Amazon follows for the MCF order the robot creates."""
AFTERSALES_ITEMS = {"split": {"SIM-DATA-30D-20GB": 2, "SIM-DATA-90D-50GB": 1},
                    "partial": {"SIM-DATA-30D-20GB": 2}}


def aftersales(world: World, seed: int, orders: int | None) -> list[str]:
    """One Rakuten order per after-sales case (AFTERSALES_CASES), none of them in RSL stock, so
    procedure A sends each to MCF: Amazon then follows that case's plan for the MCF order
    (``RKT-`` + the order number). Also in Amazon's reimbursements report: two of Amazon's own
    warehouse rows, and a payment for the lost order under a case id the robot does not know."""
    from sandbox.amazon.store import OrderPlan

    rng = random.Random(seed)
    world.amazon.fba_stock.update(FBA_STOCK)
    placed = []
    for case, plan in AFTERSALES_CASES.items():
        skus = AFTERSALES_ITEMS.get(case, {rng.choice(MCF_SKUS): 1})
        for sku in skus:
            world.rsl_stock[sku] = 0
        order = world.place_order(skus)
        world.amazon.pending_plans[f"RKT-{order.order_number}"] = OrderPlan.model_validate(plan)
        world.record("sandbox", "aftersales_case", order_number=order.order_number, case=case)
        placed.append(order.order_number)
        world.advance(timedelta(minutes=5))
    lost = placed[list(AFTERSALES_CASES).index("lost")]
    for i, reason in enumerate(("Lost_Warehouse", "Damaged_Warehouse")):
        world.amazon.add_reimbursement(case_id=None, order_id=None, sku=MCF_SKUS[i], amount=1800 + 200 * i,
                                       quantity=1, reason=reason)
    world.amazon.add_reimbursement(case_id="19876543210", order_id=f"RKT-{lost}", sku=MCF_SKUS[0], amount=2980,
                                   quantity=1, reason="Lost_Outbound")
    return placed


def stocked(world: World, seed: int, orders: int | None) -> list[str]:
    """Only the shelves: FBA stock as on a normal day, no orders (tests place their own)."""
    world.amazon.fba_stock.update(FBA_STOCK)
    return []


def tamago(world: World, seed: int, orders: int | None) -> list[str]:
    """たまごリピート's 要対応 queue: one flagged order per reason of seed 001 (and a hand-set flag),
    subscription orders, an overdue 発送予定日, 定期割引候補 with one, several and an inactive match,
    a 離島 subscription order, and ``orders`` (default 30) ordinary unflagged orders so that 注文検索
    has more than one page. Also the shelves of ``stocked``. Returns the flagged order ids."""
    from sandbox.tamago.app import DiscountMatch, NewOrder, create_order

    stocked(world, seed, orders)
    flagged = [create_order(world, body).order_id for body in tamago_cases(DiscountMatch, NewOrder)]
    for i in range(orders if orders is not None else 30):
        create_order(world, NewOrder(subscription=i % 3 == 0, cycle=1 + i % 4))
        world.advance(timedelta(minutes=7))
    return flagged


def tamago_cases(match: Any, order: Any) -> list[Any]:
    """The flagged orders of the ``tamago`` scenario, in the admin API's words (NewOrder bodies)."""
    return [
        order(reason="np_ng_1"),
        order(reason="np_ng_2", subscription=True, cycle=2),
        order(reason="np_ng_3"),
        order(reason="np_ng_4"),
        order(reason="np_unknown"),
        order(reason="amount_mismatch"),
        order(reason="blacklist_candidate", blacklisted_match=True),
        order(reason="blacklist_candidate", blacklisted_match=False),
        order(reason="payment_failed", cycle=3),
        order(reason="blacklisted"),
        order(reason="remote_island"),
        order(reason="remote_island", subscription=True, cycle=2),
        order(reason="discount_candidate"),
        order(reason="discount_candidate", discount_matches=[match(rule="phone+name"), match(rule="postal_code+name")]),
        order(reason="discount_candidate", discount_matches=[match(rule="postal_code+name", active=False)]),
        order(reason="discount_candidate", subscription=True, ship_in_days=-3),
        order(reason="blacklist_candidate", blacklisted_match=False, subscription=True, cycle=4, ship_in_days=-1),
        order(reason="manual", comment="在庫確認のため出荷保留（担当：山田）"),
    ]


def bcart(world: World, seed: int, orders: int | None) -> list[str]:
    """Normal FBA shelves and four B-cart orders, one of each kind the B-cart procedure meets:
    paid by invoice (in stock), bank transfer (prepayment: waits for 決済確認日), out of stock
    (品番 BC-VOICE30 maps to SIM-VOICE-30D, which FBA does not stock) and two destinations.
    Returns ``bcart:<order id>:<kind>`` per order."""
    world.amazon.fba_stock.update(FBA_STOCK)
    bc = world.bcart
    placed = []
    kinds: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("invoice", "後払い（Paid）", [{"items": [{"product_no": "BC-SIM30-20G", "quantity": 2}]}]),
        ("bank_transfer", "銀行振込", [{"items": [{"product_no": "BC-SIM90-50G", "quantity": 1}]}]),
        ("out_of_stock", "後払い（Paid）", [{"items": [{"product_no": "BC-VOICE30", "quantity": 1}]}]),
        ("two_destinations", "請求書払い", [
            {"items": [{"product_no": "BC-SIM30-20G", "quantity": 1}]},
            {"comp_name": "株式会社トラベルモバイル 大阪支店", "name": "佐藤 花子", "zip": "530-0001", "pref": "大阪府",
             "address1": "大阪市北区", "address2": "梅田3-1-1",
             "items": [{"product_no": "BC-SIM90-50G", "quantity": 1}, {"product_no": "BC-SIM30-20G", "quantity": 1}]},
        ]),
    ]
    for kind, payment, destinations in kinds:
        order = bc.create_order(payment=payment, destinations=destinations)
        placed.append(f"bcart:{order.id}:{kind}")
        world.advance(timedelta(minutes=10))
    return placed


def claims(world: World, seed: int, orders: int | None) -> list[str]:
    """Amazon's case mails at the claims address (issue 12): ``orders`` (default 12) cases filed in
    Seller Central for MCF orders ``CLAIM-MCF-<n>`` (the robot knows them once it has claims for
    them), answered on the clock — paid, refused, asks for more, silent — in English and Japanese,
    every phrasing, forwarded by the registered mailbox or by an agent, some acknowledged at once;
    and the mail that is not a reply the robot follows: an unregistered sender, spam, a case that is
    not ours, a newsletter, Amazon writing to the claims address itself, and Amazon writing again
    two days after it paid or refused some cases (replies to closed claims). Also the shelves of
    ``stocked``. Returns the case ids, in filing order."""
    from sandbox.amazon.case_mail import AMAZON_SENDER, CLAIMS_ADDRESS, REGISTERED_SENDER

    stocked(world, seed, orders)
    rng = random.Random(f"claims-{seed}")
    answers = ("pay", "refuse", "ask_more", "silent")
    filed: list[str] = []
    for n in range(orders or 12):
        case = world.amazon.file_case(
            kind=rng.choice(("lost", "lost", "damaged")), order_id=f"CLAIM-MCF-{n + 1}", sku=rng.choice(MCF_SKUS),
            quantity=1, text="", answer=answers[n % len(answers)], answer_after_days=rng.choice((1, 2, 3, 5)),
            amount=rng.choice((1980, 2480, 3980)), language=("en", "ja")[(n // 4) % 2], phrasing=n % 3,
            forward=("auto", "agent")[n % 2 if n % 5 else 0], acknowledge=n % 3 == 0)
        if case.answer in ("pay", "refuse") and n % 2 == 0:
            case.again_after_days = 2.0  # Amazon writes again about a case it closed
        filed.append(case.case_id)
    noise = [
        (("Someone", "someone@elsewhere.example"), f"[Case {filed[0]}] update", "We have issued a reimbursement."),
        (("Prize Team", "win@prizes.example"), "You have won!", "Click here to claim your prize."),
        (REGISTERED_SENDER, "Amazon Seller Support: Case ID 99999999999 updated", "Your case has been opened."),
        (REGISTERED_SENDER, "Your monthly seller newsletter", "Tips for the winter season."),
        (AMAZON_SENDER, f"[Case {filed[1]}] update", "Amazon writing to the claims address directly."),
    ]
    for sender, subject, body in noise:
        world.zendesk.receive_mail(subject=subject, body=body, sender=sender, recipient=CLAIMS_ADDRESS)
    return filed


def inquiries(world: World, seed: int, orders: int | None) -> list[str]:
    """A seeded day of orders (as ``day``) with buyers writing in between: questions about where their
    parcel is (some with the order number in full-width digits, some naming none), about orders the
    shop never had, about other matters (a receipt, a broken SIM), a reply to Rakuten's order mail, and
    a mail that is not from a buyer at all. Returns the order numbers and ``ticket:<id>`` per question."""
    from sandbox.zendesk.questions import KINDS, ask

    rng = random.Random(seed + 1)
    placed = day(world, seed, orders or 8)
    numbers = [p for p in placed if not p.startswith("ticket:")]
    for i, kind in enumerate(KINDS * 2):
        ticket = ask(world, kind, numbers[i % len(numbers)] if numbers else None, rng=rng)
        placed.append(f"ticket:{ticket.id}")
        world.advance(timedelta(minutes=7))
    return placed


SCENARIOS: dict[str, Callable[[World, int, int | None], list[str]]] = {
    "day": day, "stocked": stocked, "tamago": tamago, "bcart": bcart, "aftersales": aftersales, "claims": claims,
    "inquiries": inquiries,
}


def apply_scenario(world: World, name: str, *, seed: int, orders: int | None = None) -> list[str]:
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
    return scenario(world, seed, orders)
