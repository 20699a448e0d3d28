"""The Bカート order procedure (bots/bcart_orders.py) end to end on the sandbox: a real Chromium on
the Bカート screens (template mails, 帳票, 出荷実績インポート), the real API client, python-amazon-
sp-api on MCF and FBA inventory, the clock moved instead of waited for (issue 14's acceptance)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, Sandbox
from robot import Robot, make_robot, mcf_orders

from bots.bcart_orders import NAME, bcart_mail, procedure
from kuroko.connections import Connections
from kuroko.ledger import Ledger, WorkItem
from kuroko.procedure import DeskContext
from kuroko.settings import Settings, get_settings
from services.bcart_api import BcartHttpApi, BcartSettings
from services.bcart_csv import HEADER

JST = ZoneInfo("Asia/Tokyo")
DATA_30 = {"product_no": "BC-SIM30-20G", "quantity": 2}
DATA_90 = {"product_no": "BC-SIM90-50G", "quantity": 1}
VOICE = {"product_no": "BC-VOICE30", "quantity": 1}  # SIM-VOICE-30D: FBA has none in the 'stocked' world
OSAKA = {"comp_name": "株式会社トラベルモバイル 大阪支店", "name": "佐藤 花子", "zip": "530-0001", "pref": "大阪府",
         "address1": "大阪市北区", "address2": "梅田3-1-1"}
RANK = {"新規注文": 0, "保留": 1, "処理中": 2, "完了": 3}


class Sleeper:
    """How the robot's B-cart client waits out a 429 in these tests: by moving the sandbox clock."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sandbox.advance(seconds=seconds)


def quiet_connections() -> Connections:
    """The run's connections without Playwright tracing (a test keeps no traces; it is faster)."""
    return Connections(get_settings(), tracing=False)


@pytest.fixture
def robot(sandbox: Sandbox, settings_env: Path) -> Iterator[Robot]:
    with make_robot(sandbox, procedures=[procedure], connections=quiet_connections()) as robot:
        yield robot


# --- what the sandbox and the ledger show --------------------------------------------------------------
def item(robot: Robot, order: dict[str, Any]) -> WorkItem:
    found = robot.ledger.find_item(str(order["id"]), NAME)
    assert found is not None, f"the ledger has no B-cart order {order['id']}"
    return found


def state(sandbox: Sandbox, order: dict[str, Any]) -> dict[str, Any]:
    return sandbox.bcart_state(order["id"])


def mail_templates(sandbox: Sandbox, order: dict[str, Any]) -> list[str]:
    return [m["template"] for m in sandbox.bcart_mails(order["id"])]


def mcf_of(sandbox: Sandbox, order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ids = {f"BC-{lg['id']}" for lg in order["logistics"]}
    return {o["seller_fulfillment_order_id"]: o for o in mcf_orders(sandbox) if o["seller_fulfillment_order_id"] in ids}


def assert_status_never_backwards(sandbox: Sandbox, order: dict[str, Any]) -> list[str]:
    labels = {**sandbox.get("/admin/bcart/statuses")["labels"], "新規注文": "新規注文", "完了": "完了"}
    steps = [(labels[c["old"]], labels[c["new"]]) for c in state(sandbox, order)["history"]
             if c["target"] == "order" and c["field"] == "status"]
    for old, new in steps:
        assert RANK[new] > RANK[old], f"対応状況 written backwards: {old} → {new} ({steps})"
    logistics = [c for c in state(sandbox, order)["history"] if c["target"] == "logistics"]
    for change in logistics:
        assert change["new"] not in ("", None), f"a shipping field was blanked: {change}"
        if change["field"] == "status":
            assert change["new"] == "発送済", change
    return [new for _, new in steps]


def assert_shipped_as_amazon_says(sandbox: Sandbox, order: dict[str, Any]) -> None:
    """Every logistics carries its own MCF order's tracking numbers, the ship date, 発送済."""
    mcf = mcf_of(sandbox, order)
    seen_codes = set()
    for logistics in state(sandbox, order)["logistics"]:
        parcel = mcf[f"BC-{logistics['id']}"]
        numbers = [p["tracking_number"] for p in parcel["packages"]]
        shipped = max(datetime.fromisoformat(p["shipped_at"]) for p in parcel["packages"])
        assert numbers and all(numbers)
        assert logistics["delivery_code"] == ",".join(numbers)
        assert logistics["shipment_date"] == shipped.astimezone(JST).date().isoformat()
        assert logistics["status"] == "発送済"
        seen_codes.add(logistics["delivery_code"])
    assert len(seen_codes) == len(order["logistics"])


def ship(robot: Robot, sandbox: Sandbox, days: int = 1) -> None:
    """Let Amazon ship (Standard ships within a day) and the robot see it."""
    for _ in range(days):
        sandbox.advance(days=1)
        robot.run_pass()


# --- 1. paid by invoice, in stock --------------------------------------------------------------------------
def test_invoice_order_in_stock_ships_once_and_completes(robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("後払い（Paid）", items=[DATA_30, DATA_90])
    report = robot.run_pass()
    assert any(str(order["id"]) in line for line in report.intake)
    assert item(robot, order).step == "wait_for_tracking"
    assert state(sandbox, order)["status_label"] == "処理中"
    assert list(mcf_of(sandbox, order)) == [f"BC-{order['logistics'][0]['id']}"]
    assert mcf_of(sandbox, order)[f"BC-{order['logistics'][0]['id']}"]["items"] == [
        {"sku": "SIM-DATA-30D-20GB", "quantity": 2, "cancelled": 0},
        {"sku": "SIM-DATA-90D-50GB", "quantity": 1, "cancelled": 0}]
    documents = [Path(p) for p in item(robot, order).facts["documents"]]
    assert sorted(p.name for p in documents) == sorted(f"bcart-{order['code']}-{k}.pdf"
                                                       for k in ("delivery_note", "invoice"))
    assert all(p.read_bytes().startswith(b"%PDF-") for p in documents)
    assert mail_templates(sandbox, order) == []  # nothing to tell the customer yet

    ship(robot, sandbox)
    assert item(robot, order).state == "done"
    assert_shipped_as_amazon_says(sandbox, order)
    assert mail_templates(sandbox, order) == ["発送のお知らせ"]
    assert assert_status_never_backwards(sandbox, order) == ["処理中", "完了"]

    ship(robot, sandbox)  # nothing more happens
    assert mail_templates(sandbox, order) == ["発送のお知らせ"]
    assert len(mcf_of(sandbox, order)) == 1
    assert robot.ledger.find_items(str(order["id"]))[0].state == "done"


# --- a lost ledger (issue 15, item 7) ------------------------------------------------------------------
def test_a_lost_ledger_sends_the_orders_it_had_moved_on_to_a_person_not_on_blind(
        sandbox: Sandbox, settings_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    order = sandbox.bcart_order("銀行振込", items=[DATA_90])
    with make_robot(sandbox, procedures=[procedure], connections=quiet_connections()) as first:
        first.run_pass()
    assert mail_templates(sandbox, order) == ["入金案内"]
    # The ledger is lost: the robot starts again on a new, empty one.
    monkeypatch.setenv("KUROKO_DATA_DIR", str(tmp_path / "new-ledger"))
    with make_robot(sandbox, procedures=[procedure], connections=quiet_connections()) as robot:
        robot.run_pass()
        held = item(robot, order)
        assert (held.state, held.hold_code) == ("held", "bcart_not_in_ledger")
        assert "処理中" in (held.hold_reason or "") and "kuroko bcart_mail" in (held.hold_reason or "")
        assert mail_templates(sandbox, order) == ["入金案内"]  # nothing sent again on blind
        assert state(sandbox, order)["status_label"] == "処理中"
        # The person checks the customer's inbox, says the 入金案内 went out, and releases the order.
        said = robot.cli("bcart_mail", str(order["id"]), "入金案内", "--sent")
        assert said.returncode == 0, said.stderr
        released = robot.cli("release", str(order["id"]), "--procedure", NAME)
        assert released.returncode == 0, released.stderr
        sandbox.advance(minutes=5)
        robot.run_pass()
        assert item(robot, order).step == "wait_for_payment"
        assert mail_templates(sandbox, order) == ["入金案内"]
        sandbox.advance(minutes=5)
        robot.run_pass()  # a known order is not taken in again
        assert len(robot.ledger.find_items(str(order["id"]), NAME)) == 1


# --- 2. bank transfer -----------------------------------------------------------------------------------
def test_bank_transfer_waits_for_payment_before_anything_ships(robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("銀行振込", items=[DATA_90])
    robot.run_pass()
    assert mail_templates(sandbox, order) == ["入金案内"]
    assert state(sandbox, order)["status_label"] == "処理中"
    assert item(robot, order).step == "wait_for_payment"

    for _ in range(3):  # two days and more: still no money, nothing ships, nothing is sent again
        sandbox.advance(hours=20)
        robot.run_pass()
    assert mcf_of(sandbox, order) == {}
    assert mail_templates(sandbox, order) == ["入金案内"]
    assert item(robot, order).state == "active"

    sandbox.bcart_payment_seen(order["id"])  # a person saw the money arrive: 決済確認日
    sandbox.advance(hours=5)
    robot.run_pass()
    assert mail_templates(sandbox, order) == ["入金案内", "振り込み確認"]
    assert len(mcf_of(sandbox, order)) == 1

    ship(robot, sandbox)
    assert item(robot, order).state == "done"
    assert mail_templates(sandbox, order) == ["入金案内", "振り込み確認", "発送のお知らせ"]
    assert_shipped_as_amazon_says(sandbox, order)
    assert assert_status_never_backwards(sandbox, order) == ["処理中", "完了"]


def test_unpaid_after_the_configured_days_goes_to_a_person(robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("銀行振込", items=[DATA_90])
    robot.run_pass()
    for _ in range(8):
        sandbox.advance(days=1)
        robot.run_pass()
    held = item(robot, order)
    assert (held.state, held.hold_code) == ("held", "bcart_unpaid")
    ticket = sandbox.state()["zendesk"]["tickets"][-1]
    assert any("決済確認日" in c["body"] for c in ticket["comments"])
    assert mcf_of(sandbox, order) == {}
    assert mail_templates(sandbox, order) == ["入金案内"]


# --- the mail record -------------------------------------------------------------------------------------
def test_an_unconfirmed_mail_goes_to_a_person_and_is_sent_only_when_they_say_it_was_not(
        robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("後払い（Paid）", items=[DATA_30])
    key = str(order["id"])
    robot.run_pass()
    waiting = item(robot, order)
    # An earlier attempt recorded 「発送のお知らせ」 as being sent and stopped before confirming it.
    robot.ledger.update_item(waiting.id, sandbox.now(), facts={"mails": {"発送のお知らせ": "sending"}})
    ship(robot, sandbox)
    held = item(robot, order)
    assert (held.state, held.step, held.hold_code) == ("held", "mail_shipped", "bcart_mail_unconfirmed")
    assert "customer's inbox" in (held.hold_reason or "")
    assert mail_templates(sandbox, order) == []  # never resent by the robot itself
    assert state(sandbox, order)["logistics"][0]["status"] == "発送済"
    ticket = next(t for t in sandbox.state()["zendesk"]["tickets"] if key in t["subject"])
    assert any("kuroko bcart_mail" in c["body"] for c in ticket["comments"])

    said = robot.cli("bcart_mail", key, "発送のお知らせ", "--not-sent")
    assert said.returncode == 0, said.stdout + said.stderr
    released = robot.cli("release", key, "--procedure", NAME)
    assert released.returncode == 0, released.stdout + released.stderr
    sandbox.advance(minutes=5)
    robot.run_pass()
    assert item(robot, order).state == "done"
    assert mail_templates(sandbox, order) == ["発送のお知らせ"]
    assert item(robot, order).facts["mails"] == {"発送のお知らせ": "sent"}


# --- 3. out of stock ---------------------------------------------------------------------------------------
def test_out_of_stock_is_told_once_held_and_goes_on_when_stock_arrives(robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("後払い（Paid）", items=[VOICE])
    robot.run_pass()
    assert mail_templates(sandbox, order) == ["欠品のお知らせ"]
    assert state(sandbox, order)["status_label"] == "保留"
    assert item(robot, order).step == "check_stock"
    for _ in range(3):
        sandbox.advance(hours=2)
        robot.run_pass()
    assert mail_templates(sandbox, order) == ["欠品のお知らせ"]
    assert mcf_of(sandbox, order) == {}

    sandbox.set_stock(fba={"SIM-VOICE-30D": 10})  # stock arrives at FBA
    sandbox.advance(hours=1)
    robot.run_pass()
    assert state(sandbox, order)["status_label"] == "処理中"
    assert len(mcf_of(sandbox, order)) == 1

    ship(robot, sandbox)
    assert item(robot, order).state == "done"
    assert mail_templates(sandbox, order) == ["欠品のお知らせ", "発送のお知らせ"]
    assert assert_status_never_backwards(sandbox, order) == ["保留", "処理中", "完了"]


def test_an_order_a_person_cancels_while_out_of_stock_is_closed(robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("後払い（Paid）", items=[VOICE])
    robot.run_pass()
    sandbox.post(f"/admin/bcart/orders/{order['id']}/status", {"status": "キャンセル"})
    sandbox.advance(hours=2)
    robot.run_pass()
    assert item(robot, order).state == "done"
    assert state(sandbox, order)["status_label"] == "キャンセル"
    assert mcf_of(sandbox, order) == {}


def test_an_unmapped_product_goes_to_a_person(robot: Robot, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.setenv("KUROKO_BCART_SKU_MAP", '{"BC-SIM30-20G": "SIM-DATA-30D-20GB"}')
    from kuroko.settings import reload_settings

    reload_settings()
    order = sandbox.bcart_order("後払い（Paid）", items=[DATA_90])
    robot.run_pass()
    held = item(robot, order)
    assert (held.state, held.hold_code) == ("held", "bcart_unmapped_product")
    assert "BC-SIM90-50G" in (held.hold_reason or "")
    assert mcf_of(sandbox, order) == {} and mail_templates(sandbox, order) == []


# --- 4. the CSV path -----------------------------------------------------------------------------------
@pytest.fixture
def csv_robot(sandbox: Sandbox, settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Robot]:
    monkeypatch.setenv("KUROKO_BCART_SHIPPING_RESULTS", "csv")
    from kuroko.settings import reload_settings

    reload_settings()
    with make_robot(sandbox, procedures=[procedure], connections=quiet_connections()) as robot:
        yield robot


def test_csv_path_uploads_shift_jis_crlf_one_row_per_shipment(csv_robot: Robot, sandbox: Sandbox,
                                                              settings_env: Path) -> None:
    order = sandbox.bcart_order("請求書払い", items=[DATA_30], destinations=[{**OSAKA, "items": [DATA_90]}])
    csv_robot.run_pass()
    ship(csv_robot, sandbox)
    assert item(csv_robot, order).state == "done"
    imports = sandbox.get("/admin/bcart/imports")
    assert len(imports) == 1
    upload = imports[0]
    assert (upload["encoding"], upload["line_endings"], upload["error"]) == ("shift_jis", "CRLF", None)
    assert upload["header"] == list(HEADER)
    assert sorted(int(r[0]) for r in upload["rows"]) == sorted(lg["id"] for lg in order["logistics"])
    assert all(r[1].strip() and r[2].strip() for r in upload["rows"])
    assert all(r["ok"] for r in upload["results"])
    saved = list((settings_env / "bcart" / str(order["id"])).glob("shipping_results_*.csv"))
    assert len(saved) == 1
    raw = saved[0].read_bytes()
    assert raw.count(b"\r\n") == 3 and raw.count(b"\n") == 3
    assert raw.decode("cp932").splitlines()[0] == ",".join(f'"{h}"' for h in HEADER)
    assert_shipped_as_amazon_says(sandbox, order)
    assert all(c["via"] == "csv" for c in state(sandbox, order)["history"] if c["target"] == "logistics")
    assert mail_templates(sandbox, order) == ["発送のお知らせ"]
    assert_status_never_backwards(sandbox, order)


def test_csv_path_refuses_a_blank_or_partial_tracking_number(csv_robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("請求書払い", items=[DATA_30])
    csv_robot.run_pass()
    waiting = item(csv_robot, order)
    assert waiting.step == "wait_for_tracking"
    logistics_id = str(order["logistics"][0]["id"])
    # What Amazon would give if one parcel came without its number: the robot's record of the
    # shipment holds a blank beside a real number, and its 発送日 is blank.
    csv_robot.ledger.update_item(waiting.id, sandbox.now(), step="register_shipping", next_due_at=sandbox.now(),
                                 facts={"tracking": {logistics_id: {"numbers": ["123456789012", " "], "date": ""}}})
    sandbox.advance(minutes=1)
    csv_robot.run_pass()
    held = item(csv_robot, order)
    assert (held.state, held.step, held.hold_code) == ("held", "register_shipping", "blank_shipping_field")
    assert "送り状番号" in (held.hold_reason or "") and "nothing was sent" in (held.hold_reason or "")
    assert sandbox.get("/admin/bcart/imports") == []
    assert list((get_settings().data_dir / "bcart" / str(order["id"])).glob("*.csv")) == []
    logistics = state(sandbox, order)["logistics"][0]
    assert (logistics["delivery_code"], logistics["shipment_date"], logistics["status"]) == ("", None, "未発送")
    ticket = next(t for t in sandbox.state()["zendesk"]["tickets"] if str(order["id"]) in t["subject"])
    assert any("送り状番号" in c["body"] for c in ticket["comments"])
    assert "発送のお知らせ" not in mail_templates(sandbox, order)


# --- 5. the API limit ---------------------------------------------------------------------------------------
def test_a_burst_beyond_the_api_limit_is_waited_out(sandbox: Sandbox, settings_env: Path) -> None:
    sandbox.post("/admin/bcart/settings", {"rate_limit": 6, "rate_window_seconds": 300, "lock_seconds": 300})
    orders = [sandbox.bcart_order("後払い（Paid）", items=[DATA_30]) for _ in range(3)]
    sleeper = Sleeper(sandbox)
    settings = get_settings()
    api = BcartHttpApi(BcartSettings(bcart_url=sandbox.urls["bcart"]), sleep=sleeper)
    with make_robot(sandbox, procedures=[procedure],
                    connections=Connections(settings, tracing=False, given={"bcart_api": api})) as robot:
        robot.run_pass()
        ship(robot, sandbox)
        assert sleeper.waits and all(w > 0 for w in sleeper.waits)
        for order in orders:
            assert item(robot, order).state == "done", item(robot, order)
            assert_shipped_as_amazon_says(sandbox, order)
            assert mail_templates(sandbox, order) == ["発送のお知らせ"]
    assert api.request_count() > 6


# --- 7. two destinations ---------------------------------------------------------------------------------
def test_two_destinations_make_two_mcf_orders_each_with_its_own_tracking(robot: Robot, sandbox: Sandbox) -> None:
    order = sandbox.bcart_order("請求書払い", items=[DATA_30], destinations=[{**OSAKA, "items": [DATA_90, DATA_30]}])
    robot.run_pass()
    mcf = mcf_of(sandbox, order)
    assert sorted(mcf) == sorted(f"BC-{lg['id']}" for lg in order["logistics"])
    osaka = mcf[f"BC-{order['logistics'][1]['id']}"]
    assert {i["sku"] for i in osaka["items"]} == {"SIM-DATA-90D-50GB", "SIM-DATA-30D-20GB"}
    ship(robot, sandbox)
    assert item(robot, order).state == "done"
    assert_shipped_as_amazon_says(sandbox, order)
    assert len(mcf_of(sandbox, order)) == 2
    created = Counter(e["seller_fulfillment_order_id"] for e in sandbox.audit("amazon", "fulfillment_order_created"))
    assert all(n == 1 for n in created.values())
    assert mail_templates(sandbox, order) == ["発送のお知らせ"]


# --- 6. crash harness ------------------------------------------------------------------------------------
class Harness:
    """`kuroko run --once --procedure bcart_orders` as a subprocess, killed by the crash hook right
    after its N-th side effect, started again until a run ends by itself."""

    def __init__(self, sandbox: Sandbox, workdir: Path) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KUROKO_")}
        self.env.update(sandbox.robot_env())
        self.env["KUROKO_DATA_DIR"] = str(self.data_dir)
        self.runs = 0
        self.kill_points: list[str] = []

    def run(self, crash_after: int | None) -> int:
        env = dict(self.env)
        if crash_after is not None:
            env["KUROKO_CRASH_AFTER_ACTIONS"] = str(crash_after)
        self.runs += 1
        child = subprocess.Popen([sys.executable, "-m", "kuroko.ops.cli", "run", "--once", "--procedure", NAME],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        try:
            stdout, stderr = child.communicate(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the browser a killed run leaves behind
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
        if proc.returncode == -signal.SIGKILL:
            line = next((x for x in proc.stderr.splitlines() if "KUROKO_CRASH_AFTER_ACTIONS" in x), "?")
            self.kill_points.append(line.split(": ", 2)[-1])
        elif proc.returncode != 0:
            raise AssertionError(f"kuroko run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc.returncode

    def until_quiet(self, crash_after: int) -> None:
        for _ in range(40):
            if self.run(crash_after) == 0:
                return
        raise AssertionError("the robot never finished a run by itself")

    def cli(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "kuroko.ops.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def person_says_mail(self, key: str, template: str, *, sent: bool) -> None:
        """`kuroko bcart_mail KEY TEMPLATE --sent|--not-sent`, called in this process (the command's own
        code path, without starting Python once more)."""
        ledger = Ledger(Settings(data_dir=self.data_dir).ledger_database_url())
        try:
            desk = DeskContext(ledger=ledger, settings=Settings(data_dir=self.data_dir), now=self.sandbox.now(),
                               by="person (test)")
            assert "Recorded" in bcart_mail(desk, key, template, sent=sent)
        finally:
            ledger.close()

    def item(self, key: str) -> WorkItem:
        ledger = Ledger(Settings(data_dir=self.data_dir).ledger_database_url())
        try:
            found = ledger.find_item(key, NAME)
            assert found is not None
            return found
        finally:
            ledger.close()


@pytest.mark.parametrize("crash_after", [1, pytest.param(2, marks=pytest.mark.chaos_full)])
def test_crashes_never_send_a_mail_twice_or_ship_twice(sandbox: Sandbox, tmp_path: Path, crash_after: int) -> None:
    order = sandbox.bcart_order("銀行振込", items=[DATA_30], destinations=[{**OSAKA, "items": [DATA_90]}])
    key = str(order["id"])
    harness = Harness(sandbox, tmp_path)
    person_checks: list[tuple[str, bool]] = []
    paid = False
    for _ in range(30):
        harness.until_quiet(crash_after)
        current = harness.item(key)
        if current.state == "done":
            break
        if current.state == "held":
            assert current.hold_code == "bcart_mail_unconfirmed", current.hold_reason
            template = next(t for t, s in current.facts["mails"].items() if s == "sending")
            went_out = template in mail_templates(sandbox, order)  # the person looks at the customer's inbox
            person_checks.append((template, went_out))
            harness.person_says_mail(key, template, sent=went_out)
            harness.cli("release", key, "--procedure", NAME)
            continue
        if current.step == "wait_for_payment" and not paid:
            sandbox.bcart_payment_seen(order["id"])
            paid = True
            sandbox.advance(hours=5)
        else:
            sandbox.advance(hours=12)
    assert harness.item(key).state == "done", harness.item(key)
    assert harness.kill_points, "the crash hook never fired"
    # No mail twice, and every mail once in the end.
    assert Counter(mail_templates(sandbox, order)) == Counter(["入金案内", "振り込み確認", "発送のお知らせ"])
    # A crash right after a send went to a person, never to a second send.
    crashed_after_send = [p for p in harness.kill_points if "send_mail" in p]
    if crash_after == 1:  # every side effect is a kill point: each of the three sends was one
        assert len(crashed_after_send) == 3, harness.kill_points
    assert len(person_checks) == len(crashed_after_send), (person_checks, harness.kill_points)
    assert all(went_out for _, went_out in person_checks)
    # No MCF twice.
    created = Counter(e["seller_fulfillment_order_id"] for e in sandbox.audit("amazon", "fulfillment_order_created"))
    assert sorted(created) == sorted(f"BC-{lg['id']}" for lg in order["logistics"])
    assert set(created.values()) == {1}
    # No status written backwards, no field blanked; shipped as Amazon says.
    assert assert_status_never_backwards(sandbox, order) == ["処理中", "完了"]
    assert_shipped_as_amazon_says(sandbox, order)
    print(f"crash harness (N={crash_after}): {harness.runs} runs, kill points: {harness.kill_points}")
