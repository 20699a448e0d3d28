"""The sandbox's shared world through its admin API: clock, orders, RSL, faults, reset."""

from __future__ import annotations

from conftest import Sandbox

ODC = "[Rakuten Marketplace] Order Details Confirmation (automatic email)"
OC = "[Rakuten Marketplace] Order Confirmation (automatic email)"


def test_clock_moves_only_when_told(sandbox: Sandbox) -> None:
    start = sandbox.now()
    assert sandbox.now() == start
    later = sandbox.advance(minutes=31)
    assert (later - start).total_seconds() == 31 * 60


def test_placed_order_reaches_boss_rms_and_zendesk(sandbox: Sandbox) -> None:
    order = sandbox.place_order(["SIM-DATA-30D-20GB"])
    number = order["order_number"]
    assert order["boss_state"] == "Confirmation to be"
    assert order["rms_status"] == "注文確認待ち"
    tickets = sandbox.state()["zendesk"]["tickets"]
    assert [t["subject"] for t in tickets] == [ODC]
    assert number in tickets[0]["comments"][0]["body"]
    assert "Purchase History: " + sandbox.urls["rms"] in tickets[0]["comments"][0]["body"]


def test_rsl_stock_confirms_and_mails_after_thirty_minutes(sandbox: Sandbox) -> None:
    sandbox.set_stock(rsl={"SIM-DATA-30D-20GB": 1})
    stocked = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    unstocked = sandbox.place_order(["SIM-DATA-30D-20GB"])["order_number"]
    sandbox.advance(minutes=29)
    assert sandbox.order(stocked)["boss_state"] == "Confirmation to be"
    sandbox.advance(minutes=2)
    assert sandbox.order(stocked)["boss_state"] == "Shipping in Progress"
    assert sandbox.order(unstocked)["boss_state"] == "Confirmation to be"
    subjects = [t["subject"] for t in sandbox.state()["zendesk"]["tickets"]]
    assert subjects.count(OC) == 1


def test_unknown_sku_is_refused_with_the_known_ones(sandbox: Sandbox) -> None:
    r = sandbox.client.post(sandbox.admin + "/admin/orders", json={"skus": ["NOPE"]})
    assert r.status_code == 400
    assert "SIM-DATA-30D-20GB" in r.json()["detail"]


def test_seeded_day_is_deterministic(sandbox: Sandbox) -> None:
    first = sandbox.reset(seed=7, scenario="day", orders=40)["orders"]
    second = sandbox.reset(seed=7, scenario="day", orders=40)["orders"]
    other = sandbox.reset(seed=8, scenario="day", orders=40)["orders"]
    assert first == second
    assert first != other
    assert len(first) == 40


def test_injected_429_burst_then_recovers(sandbox: Sandbox) -> None:
    sandbox.fault("zendesk", burst_429=2)
    url = sandbox.urls["zendesk"] + "/api/v2/users/me.json"
    codes = [sandbox.client.get(url).status_code for _ in range(3)]
    assert codes[:2] == [429, 429]
    assert codes[2] != 429
