"""The ledger shared by several robots, on SQLite and on a throwaway PostgreSQL (tests/pg.py):
claiming the next due item in one statement, leases renewed and taken over from dead robots,
heartbeats, the intake lock — and two robots (threads with their own Runner and ledger
connection) taking in the same new tickets at the same moment: one item each, one merge each."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeClock, FakeDesk
from sqlalchemy import inspect, update

from kuroko.connections import Connection, Connections
from kuroko.ledger import Ledger, Worker, WorkItem, wall_now
from kuroko.procedure import Done, IntakeContext, Outcome, Procedure, StepContext
from kuroko.runner import Runner
from kuroko.settings import Settings

DESK: Connection[Any] = Connection("toy_desk", lambda connections: FakeDesk())


@pytest.fixture
def ledger(ledger_url: str) -> Any:
    opened = Ledger(ledger_url)
    yield opened
    opened.close()


def add(ledger: Ledger, key: str, *, due_in: float = 0, procedure: str = "toy") -> WorkItem:
    now = FakeClock().now()
    return ledger.add_item(procedure=procedure, key=key, ticket_id=None, step="work",
                           due=now + timedelta(minutes=due_in), now=now)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_claim_next_takes_the_earliest_due_free_item_and_nothing_not_yet_due(ledger: Ledger) -> None:
    now = FakeClock().now()
    add(ledger, "late", due_in=-5)
    add(ledger, "early", due_in=-10)
    add(ledger, "future", due_in=30)
    add(ledger, "other", due_in=-20, procedure="another")
    first = ledger.claim_next(["toy"], "robot-a", now)
    second = ledger.claim_next(["toy"], "robot-b", now)
    assert first is not None and first.key == "early" and first.lease_owner == "robot-a"
    assert second is not None and second.key == "late", "an item another robot holds is not taken"
    assert ledger.claim_next(["toy"], "robot-c", now) is None, "nothing else is due and free"
    assert ledger.claim_next(["toy"], "robot-a", now, skip=[first.id]) is None
    assert first.lease_until is not None and first.lease_until > wall_now() + timedelta(seconds=590)


def test_robots_claiming_at_once_never_share_an_item(ledger_url: str) -> None:
    setup = Ledger(ledger_url)
    for n in range(40):
        add(setup, f"i{n:02d}", due_in=-n)
    now = FakeClock().now()
    claimed: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def robot(name: str) -> None:
        own = Ledger(ledger_url)
        mine: list[str] = []
        start.wait()
        while (item := own.claim_next(["toy"], name, now)) is not None:
            mine.append(item.key)
        claimed[name] = mine
        own.close()

    threads = [threading.Thread(target=robot, args=(f"robot-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    every = [key for keys in claimed.values() for key in keys]
    assert sorted(every) == sorted(f"i{n:02d}" for n in range(40)), "each item claimed exactly once"
    assert len(claimed) == 4
    owners = {i.key: i.lease_owner for i in setup.items()}
    for name, keys in claimed.items():
        assert all(owners[k] == name for k in keys)
    setup.close()


def hold(ledger: Ledger, key: str, owner: str, *, lease_left: float, beat_age: float | None) -> None:
    """As if robot ``owner`` held ``key`` with ``lease_left`` seconds of lease, and last beat
    ``beat_age`` seconds ago (None: never registered)."""
    item = add(ledger, key, due_in=-1)
    with ledger.session() as s:
        s.execute(update(WorkItem).where(WorkItem.id == item.id)
                  .values(lease_owner=owner, lease_until=wall_now() + timedelta(seconds=lease_left)))
        if beat_age is not None:
            at = wall_now() - timedelta(seconds=beat_age)
            s.add(Worker(id=owner, host=owner.split(":")[0], pid=1, started_at=at, heartbeat_at=at))


def test_a_robot_elsewhere_is_taken_over_only_when_its_lease_ran_out_and_its_heartbeat_stopped(
        ledger: Ledger) -> None:
    now = FakeClock().now()
    hold(ledger, "leased", "elsewhere:1:aaaaaa", lease_left=300, beat_age=600)
    hold(ledger, "beating", "elsewhere:2:bbbbbb", lease_left=-5, beat_age=3)
    hold(ledger, "dead", "elsewhere:3:cccccc", lease_left=-5, beat_age=600)
    hold(ledger, "unknown", "elsewhere:4:dddddd", lease_left=-5, beat_age=None)
    taken = []
    while (item := ledger.claim_next(["toy"], "here:9:zzzzzz", now, heartbeat_timeout=90)) is not None:
        taken.append(item.key)
    assert sorted(taken) == ["dead", "unknown"], (
        "an unexpired lease and a robot still beating are respected; a lease run out with no heartbeat is taken")


def test_a_dead_process_on_this_machine_is_taken_over_at_once(ledger: Ledger) -> None:
    now = FakeClock().now()
    owner = f"{socket.gethostname()}:{dead_pid()}:abcdef"
    hold(ledger, "orphan", owner, lease_left=600, beat_age=1)
    item = ledger.claim_next(["toy"], f"{socket.gethostname()}:1:me0000", now)
    assert item is not None and item.key == "orphan"


def test_a_lease_is_renewed_only_by_its_holder(ledger: Ledger) -> None:
    now = FakeClock().now()
    add(ledger, "x", due_in=-1)
    item = ledger.claim_next(["toy"], "robot-a", now, lease_seconds=5)
    assert item is not None
    assert ledger.renew_lease(item.id, "robot-a", 600)
    assert ledger.get_item(item.id).lease_until > wall_now() + timedelta(seconds=590)  # type: ignore[operator]
    assert not ledger.renew_lease(item.id, "robot-b", 600)


def test_one_robot_at_a_time_runs_a_procedures_intake(ledger_url: str) -> None:
    a, b = Ledger(ledger_url), Ledger(ledger_url)
    with a.intake_lock("toy") as first, b.intake_lock("toy") as second, b.intake_lock("other") as other:
        assert first and not second and other
    with b.intake_lock("toy") as after:
        assert after, "free again once the first robot is done"
    a.close()
    b.close()


def test_postgresql_keeps_times_with_their_zone_and_facts_as_jsonb(pg_url: str) -> None:
    ledger = Ledger(pg_url)
    columns = {c["name"]: c["type"] for c in inspect(ledger.engine).get_columns("work_items")}
    assert columns["next_due_at"].timezone and columns["lease_until"].timezone  # type: ignore[attr-defined]
    assert type(columns["facts"]).__name__ == "JSONB"
    item = add(ledger, "tz")
    ledger.update_item(item.id, FakeClock().now(), facts={"a": {"b": 1}})
    assert ledger.get_item(item.id).facts == {"a": {"b": 1}}
    assert ledger.get_item(item.id).next_due_at == FakeClock().now()
    ledger.close()


# --- two robots, one toy procedure with merges --------------------------------------------------
class Inbox:
    """Tickets as (ticket id, key): the first ticket of a key is the item's own, later ones are
    merged into it (like Rakuten's later mails). Counts every merge done in 'the helpdesk'."""

    def __init__(self, tickets: list[tuple[int, str]]) -> None:
        self.tickets = tickets
        self.merges: list[int] = []
        self.worked: list[str] = []
        self.lock = threading.Lock()


def merging_toy(inbox: Inbox) -> Procedure:
    procedure = Procedure("toy", title="Toy", item_label="toy item", desk=DESK)

    @procedure.intake
    def take_in(ctx: IntakeContext) -> None:
        known = ctx.ledger.known_ticket_ids()
        time.sleep(0.3)  # a slow helpdesk: both robots are in their intake at the same moment
        for ticket_id, key in inbox.tickets:
            if ticket_id in known:
                continue
            item = ctx.ledger.find_item(key, "toy")
            if item is None:
                item = ctx.take_in(key, ticket_id=ticket_id)
                if item is not None:
                    ctx.ledger.add_ticket(ticket_id, item.id, "primary", ctx.now)
                    ctx.taken_in.append(key)
                continue

            def merge(ticket: int = ticket_id) -> None:
                with inbox.lock:
                    inbox.merges.append(ticket)

            ctx.act("toy_desk", "merge_tickets", merge, item=item, tickets=[ticket_id])
            ctx.ledger.add_ticket(ticket_id, item.id, "merged", ctx.now)

    @procedure.step(first=True, final=True, needs_person="Do it by hand.")
    def work(ctx: StepContext) -> Outcome:
        time.sleep(0.05)
        with inbox.lock:
            inbox.worked.append(ctx.key)
        return Done(None, detail="worked")

    procedure.validate()
    return procedure


def runner_on(ledger_url: str, tmp_path: Path, procedure: Procedure, clock: FakeClock, n: int) -> Runner:
    settings = Settings(_env_file=None, data_dir=tmp_path / f"robot{n}", clock_url=None,  # type: ignore[call-arg]
                        heartbeat_seconds=0.1)
    connections = Connections(settings, given={"toy_desk": FakeDesk()})
    return Runner(settings, Ledger(ledger_url), connections, clock, procedures=[procedure],
                  worker_id=f"{socket.gethostname()}:{os.getpid()}:robot{n}")


def test_two_robots_taking_in_the_same_tickets_at_once_make_one_item_and_one_merge_each(
        ledger_url: str, tmp_path: Path) -> None:
    tickets = [(1, "k1"), (2, "k2"), (3, "k3"), (4, "k1"), (5, "k2"), (6, "k4"), (7, "k3")]
    inbox = Inbox(tickets)
    procedure = merging_toy(inbox)
    clock = FakeClock()
    robots = [runner_on(ledger_url, tmp_path, procedure, clock, n) for n in (1, 2)]
    start = threading.Barrier(2)
    reports: list[Any] = []

    def work(runner: Runner) -> None:
        start.wait()
        reports.append(runner.run_pass())

    threads = [threading.Thread(target=work, args=(r,)) for r in robots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    ledger = robots[0].ledger
    items = ledger.items()
    assert sorted(i.key for i in items) == ["k1", "k2", "k3", "k4"], "one item per key"
    assert sorted(inbox.merges) == [4, 5, 7], "each later ticket merged once"
    assert sorted(inbox.worked) == ["k1", "k2", "k3", "k4"], "each item worked once"
    assert {i.state for i in items} == {"done"}
    assert sorted(len(r.intake) for r in reports) == [0, 4], "one robot took in, the other skipped its intake"
    assert sum(r.items_run for r in reports) == 4
    workers = {s.worker_id for i in items for s in ledger.steps(i.id)}
    assert workers <= {r.worker_id for r in robots}
    beats = {w.id: w for w in ledger.workers()}
    assert set(beats) == {r.worker_id for r in robots}, "both robots registered with a heartbeat"
    assert all(w.stopped_at is not None for w in beats.values()), "a clean end marks the robot stopped"
    for r in robots:
        r.ledger.close()


def test_a_robot_that_lost_its_lease_stops_working_the_item(ledger_url: str, tmp_path: Path) -> None:
    inbox = Inbox([(1, "k1")])
    procedure = Procedure("toy", title="Toy", item_label="toy item", desk=DESK)
    stolen: list[bool] = []

    @procedure.step(first=True, then=("second",), needs_person="x")
    def first(ctx: StepContext) -> Outcome:
        with ctx.ledger.session() as s:  # another robot took it over meanwhile
            s.execute(update(WorkItem).where(WorkItem.id == ctx.item.id).values(lease_owner="elsewhere:1:x"))
        stolen.append(True)
        return Done("second", detail="first")

    @procedure.step(final=True, needs_person="x")
    def second(ctx: StepContext) -> Outcome:
        inbox.worked.append(ctx.key)
        return Done(None, detail="second")

    procedure.validate()
    runner = runner_on(ledger_url, tmp_path, procedure, FakeClock(), 1)
    add(runner.ledger, "k1", due_in=-1)
    with runner.ledger.session() as s:
        s.execute(update(WorkItem).values(step="first"))
    report = runner.run_pass()
    assert stolen and inbox.worked == [], "the second step is not run without the lease"
    assert report.outcomes["lost"] == 1
    item = runner.ledger.find_item("k1", "toy")
    assert item is not None and item.step == "second" and item.lease_owner == "elsewhere:1:x"
    runner.ledger.close()
