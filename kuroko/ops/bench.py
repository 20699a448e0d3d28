"""``make bench``: a seeded day of orders through the sandbox, measured.

Per path (in stock, MCF, office, held): orders completed, wall time per order (median and 95th
percentile), and per order the browser page loads (BOSS / RMS), Zendesk requests and SP-API
requests; the peak memory of the robot with its browser; how often the BOSS list was read per pass.
Results are printed and written to ``test-results/bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kuroko.ledger import Ledger, WorkItem, worker_pid
from kuroko.settings import Settings
from sandbox.process import SandboxProcess

RESULTS = Path("test-results")


def _pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (Chromium's processes share many) counted once overall,
    where summing RSS would count them once per process."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                children[parent].append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def process_kind(pid: int, robot: int) -> str:
    """What a process of the robot's tree is, by its command line: the robot itself, Playwright's
    driver (node), or one of Chromium's processes (browser, renderer, GPU, utility, zygote)."""
    if pid == robot:
        return "robot (Python)"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            args = raw.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "gone"
    text = b" ".join(args).decode(errors="replace")
    if "run-driver" in text or "playwright" in text.split(" ", 1)[0] or text.startswith("node"):
        return "Playwright driver (node)"
    if "chrom" in text:
        kind = re.search(r"--type=([a-z-]+)", text)
        return f"Chromium {kind.group(1)}" if kind else "Chromium browser"
    return "other"


class PeakMemory:
    """Samples the memory (PSS) of this process plus its children (Chromium, Playwright's driver) —
    but not the sandbox, which is measured apart. Keeps the peak of the whole, the peak of each kind
    of process, what each kind held at the moment of the whole's peak, and the whole at each mark
    (``mark(label)``, e.g. after each pass) to see whether it grows over the day."""

    def __init__(self, exclude: int | None = None, interval: float = 0.25) -> None:
        self.exclude = exclude
        self.interval = interval
        self.peak_kib = 0
        self.peak_by_kind: dict[str, int] = {}
        self.at_peak: dict[str, int] = {}
        self.marks: list[tuple[str, int]] = []
        self.most_processes: dict[str, int] = {}
        self._now_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, int]:
        me = os.getpid()
        excluded = {self.exclude, *(_descendants(self.exclude) if self.exclude else [])}
        kinds: dict[str, int] = defaultdict(int)
        counts: Counter[str] = Counter()
        for pid in [me, *(p for p in _descendants(me) if p not in excluded)]:
            kind = process_kind(pid, me)
            kinds[kind] += _pss_kib(pid)
            counts[kind] += 1
        for kind, n in counts.items():
            self.most_processes[kind] = max(self.most_processes.get(kind, 0), n)
        return dict(kinds)

    def _run(self) -> None:
        while not self._stop.is_set():
            kinds = self.sample()
            total = sum(kinds.values())
            self._now_kib = total
            for kind, kib in kinds.items():
                self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), kib)
            if total > self.peak_kib:
                self.peak_kib, self.at_peak = total, kinds
            self._stop.wait(self.interval)

    def mark(self, label: str) -> None:
        self.marks.append((label, sum(self.sample().values())))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def memory_figures(memory: PeakMemory) -> dict[str, Any]:
    return {"peak_mib": _mib(memory.peak_kib),
            "at_peak_mib": {k: _mib(v) for k, v in sorted(memory.at_peak.items(), key=lambda kv: -kv[1])},
            "peak_by_kind_mib": {k: _mib(v) for k, v in sorted(memory.peak_by_kind.items(), key=lambda kv: -kv[1])},
            "after_each_pass_mib": [(label, _mib(kib)) for label, kib in memory.marks],
            "most_processes": dict(memory.most_processes)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def path_of(order: WorkItem) -> str:
    path = "held" if order.state == "held" else order.path or "-"
    return path if order.procedure == "rakuten_sim_order" else f"{order.procedure}: {path}"


def aftersales_summary(items: list[WorkItem]) -> dict[str, Any]:
    """The after-sales procedure's cost per MCF order (its whole life: tracking reads, later 発送メール …)."""
    mine = [i for i in items if i.procedure == "mcf_aftercare"]
    metrics = [i.facts.get("metrics", {}) for i in mine]
    reads = [sum(int(p.get("checks", 0)) for p in i.facts.get("packages", {}).values()) for i in mine]

    def mean(key: str) -> float:
        return round(statistics.fmean(m.get(key, 0) for m in metrics), 2) if metrics else 0.0

    return {
        "mcf_orders": len(mine),
        "settled": sum(i.state == "done" for i in mine),
        "outcomes": dict(Counter(i.path or "following" for i in mine)),
        "spapi_requests_per_order": mean("spapi_requests"),
        "zendesk_requests_per_order": mean("zendesk_requests"),
        "rms_page_loads_per_order": mean("rakuten_page_loads"),
        "tracking_reads_per_order": round(statistics.fmean(reads), 2) if reads else 0.0,
        "seconds_per_order": mean("seconds"),
    }


def summarize(orders: list[WorkItem]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[WorkItem]] = defaultdict(list)
    for order in orders:
        groups[path_of(order)].append(order)
    table: dict[str, dict[str, Any]] = {}
    for path, group in sorted(groups.items()):
        metrics = [o.facts.get("metrics", {}) for o in group]
        seconds = [m.get("seconds", 0.0) for m in metrics]

        def mean(key: str, ms: list[dict[str, Any]] = metrics) -> float:
            return round(statistics.fmean(m.get(key, 0) for m in ms), 2) if ms else 0.0

        table[path] = {
            "orders": len(group),
            "completed": sum(o.state == "done" for o in group),
            "median_s": round(statistics.median(seconds), 3) if seconds else 0.0,
            "p95_s": round(percentile(seconds, 0.95), 3),
            "boss_page_loads": mean("boss_page_loads"),
            "rms_page_loads": mean("rakuten_page_loads"),
            "max_rms_page_loads": max((m.get("rakuten_page_loads", 0) for m in metrics), default=0),
            "zendesk_requests": mean("zendesk_requests"),
            "spapi_requests": mean("spapi_requests"),
        }
    return table


class PlainProgress:
    """Progress for a log file (no live display there): a line every ``every`` orders."""

    def __init__(self, console: Console, every: int = 100) -> None:
        self.console = console
        self.every = every
        self.started = time.perf_counter()

    def listener(self, event: str, data: dict[str, Any]) -> None:
        if event == "pass_started":
            self.started = time.perf_counter()
        elif event == "item_done" and (data["index"] % self.every == 0 or data["index"] == data["total"]):
            self.console.print(f"    {data['index']}/{data['total']} orders, "
                               f"{time.perf_counter() - self.started:.0f} s")

    def finish(self) -> None:
        pass

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


PROCEDURE_A_DAY = ["rakuten_sim_order", "mcf_aftercare", "amazon_claims", "buyer_inquiries"]
"""The procedures of the Rakuten order and its after-sales: the browser has BOSS and RMS open."""


class PythonGrowth:
    """What the robot's own Python holds after each intake and each pass, from tracemalloc
    (``--tracemalloc``): the traced memory, the pass's high-water mark, and the call sites that grew
    most since the day began. tracemalloc slows Python down: its runs say where memory goes, not how
    fast the robot is."""

    def __init__(self, console: Console, frames: int = 8, top: int = 12) -> None:
        import tracemalloc

        self.console, self.top, self.tracemalloc = console, top, tracemalloc
        self.passes: list[dict[str, Any]] = []
        tracemalloc.start(frames)
        self.first = self._snapshot()

    def _snapshot(self) -> Any:
        tm = self.tracemalloc
        return tm.take_snapshot().filter_traces([tm.Filter(False, tm.__file__)])

    def listener(self, event: str, data: dict[str, Any]) -> None:
        """At the start of each pass's items (after the intake, the due list and the per-pass reads):
        what the pass holds then, the largest call sites first."""
        if event != "pass_started":
            return
        now, peak = self.tracemalloc.get_traced_memory()
        snapshot = self._snapshot()
        self.console.print(f"    Python (tracemalloc) after the intake: {_mib(now // 1024)} MiB held, "
                           f"{_mib(peak // 1024)} MiB at its peak")
        for stat in snapshot.compare_to(self.first, "traceback")[:self.top]:
            self.console.print("      " + self._line(stat))

    @staticmethod
    def _line(stat: Any) -> str:
        frames = [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in stat.traceback]
        return f"{stat.size_diff / 1024:+.0f} KiB ({stat.count_diff:+d} blocks) " + " < ".join(frames)

    def mark(self, label: str) -> None:
        tm = self.tracemalloc
        now, peak = tm.get_traced_memory()
        tm.reset_peak()
        grown = [self._line(stat) for stat in self._snapshot().compare_to(self.first, "traceback")[:self.top]]
        self.passes.append({"pass": label, "traced_mib": _mib(now // 1024), "pass_peak_mib": _mib(peak // 1024),
                            "grown_since_start": grown})
        self.console.print(f"    Python (tracemalloc): {_mib(now // 1024)} MiB held, {_mib(peak // 1024)} MiB at the "
                           "pass's peak")
        for line in grown:
            self.console.print(f"      {line}")

    def stop(self) -> None:
        self.tracemalloc.stop()


def both(first: Any, second: Any) -> Any:
    """One progress listener that tells two."""
    def tell(event: str, data: dict[str, Any]) -> None:
        first(event, data)
        second(event, data)
    return tell


def run_bench(console: Console, *, orders: int, seed: int, data_dir: Path, trace: str | None = None,
              procedures: list[str] | None = PROCEDURE_A_DAY, floor_orders: int = 0,
              python_growth: bool = False) -> dict[str, Any]:
    import shutil

    from kuroko.clock import clock_from_url
    from kuroko.connections import Connections
    from kuroko.logs import setup_logging
    from kuroko.ops.demo import AFTERSALES_PLANS, AFTERSALES_TIMELINE, TIMELINE, play_office_staff
    from kuroko.ops.progress import PassProgress
    from kuroko.runner import Runner
    from kuroko.settings import reload_settings

    if data_dir.exists():
        shutil.rmtree(data_dir)
    console.print(f"[bold]Benchmark[/]: a seeded day of {orders} orders (seed {seed}) …")
    sandbox = SandboxProcess(scenario="day", seed=seed, orders=orders, startup_seconds=300)
    with sandbox as admin:
        os.environ.update(admin.robot_env())
        reload_settings()
        settings = Settings(data_dir=data_dir)
        setup_logging(settings, console=False)
        ledger = Ledger(settings.ledger_database_url())
        sandbox_pid = sandbox.proc.pid if sandbox.proc else None
        passes: list[dict[str, Any]] = []
        started = time.perf_counter()
        trace = trace or settings.trace
        progress: PassProgress | PlainProgress = (PassProgress(console) if console.is_terminal
                                                  else PlainProgress(console))
        for plan in AFTERSALES_PLANS:
            admin.post("/admin/amazon/plans/next", plan)
        growth = PythonGrowth(console) if python_growth else None
        with PeakMemory(exclude=sandbox_pid) as memory, progress:
            from kuroko.registry import load_procedures, select

            chosen = select(load_procedures(), procedures)
            for label, delta in [*TIMELINE, *AFTERSALES_TIMELINE]:
                if delta:
                    admin.advance(**delta)
                play_office_staff(ledger, admin, Console(quiet=True))
                t0 = time.perf_counter()
                # As `kuroko run` works (kuroko/ops/schedule.py): a browser and connections per pass,
                # the process and its ledger for the whole day.
                connections = Connections(settings, tracing=trace != "off")
                runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url), procedures=chosen,
                                listener=both(progress.listener, growth.listener) if growth else progress.listener,
                                trace=trace)
                try:
                    report = runner.run_pass()
                    progress.finish()
                    memory.mark(label)
                finally:
                    connections.close()
                if growth:
                    growth.mark(label)
                list_reads = report.counters.get("boss_list_reads", 0)
                passes.append({"pass": label, "orders_run": report.items_run, "boss_list_reads": list_reads,
                               "seconds": round(time.perf_counter() - t0, 2)})
                console.print(f"  {label}: {report.items_run} orders, BOSS list read {list_reads}×, "
                              f"{passes[-1]['seconds']} s")
        if growth:
            growth.stop()
        total = time.perf_counter() - started
        known = {o.key: o for o in ledger.items()}
        placed = [o["order_number"] for o in admin.get("/admin/orders")]
        unsettled = [n for n in placed if n not in known or known[n].state not in ("done", "held")]
        api_errors = [s for o in known.values() for s in ledger.steps(o.id)
                      if s.error_code in ("429", "QuotaExceeded")]
        summary = admin.summary()
        rms_logins = admin.get("/admin/rms/logins")
        result = {
            "orders": orders,
            "seed": seed,
            "wall_seconds": round(total, 1),
            "memory": memory_figures(memory),
            "passes": passes,
            "paths": summarize(ledger.items()),
            "aftersales": aftersales_summary(ledger.items()),
            "placed_orders": len(placed),
            "completed": sum(known[n].state == "done" for n in placed if n in known),
            "held": sum(known[n].state == "held" for n in placed if n in known),
            "lost": len(unsettled),
            "lost_orders": unsettled[:20],
            "responses_429": summary["responses_429"],
            "requests": summary["request_counts"],
            "429_surfaced_to_runner_and_retried": len(api_errors),
            "held_because_of_429": sum(1 for o in known.values() if o.state == "held"
                                       and o.hold_code in ("429", "QuotaExceeded")),
            "rms_full_logins": rms_logins["full_logins"],
            "rms_login_submissions": rms_logins["submissions"],
        }
        if growth:
            result["python_growth"] = growth.passes
        ledger.close()
        if floor_orders:
            from kuroko.ops.floor import run_floor

            console.print(f"  the floor: {floor_orders} MCF orders by a bare script …")
            floor = run_floor(admin, settings, orders=floor_orders)
            robot_median = result["paths"].get("mcf", {}).get("median_s", 0.0)
            floor["robot_over_floor"] = round(robot_median / floor["median_s"], 2) if floor["median_s"] else 0.0
            result["floor"] = floor
    return result


def print_result(console: Console, result: dict[str, Any]) -> None:
    table = Table(title=f"{result['orders']} orders in {result['wall_seconds']} s; peak memory (robot + Chromium) "
                        f"{result['memory']['peak_mib']} MiB")
    for col in ("path", "orders", "completed", "median s/order", "p95 s/order", "BOSS loads", "RMS loads",
                "Zendesk req", "SP-API req"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for path, row in result["paths"].items():
        table.add_row(path, str(row["orders"]), str(row["completed"]), f"{row['median_s']:.2f}", f"{row['p95_s']:.2f}",
                      f"{row['boss_page_loads']:.1f}", f"{row['rms_page_loads']:.1f}",
                      f"{row['zendesk_requests']:.1f}", f"{row['spapi_requests']:.1f}")
    console.print(table)
    memory = result.get("memory")
    if memory:
        console.print("Memory (PSS) at the peak: " + ", ".join(f"{k} {v}" for k, v in memory["at_peak_mib"].items())
                      + " MiB; after each pass: " + ", ".join(f"{v}" for _, v in memory["after_each_pass_mib"])
                      + " MiB.")
    console.print("Per-order figures are means over the order's whole life; the BOSS list is read once per pass "
                  "(counted per pass above), not per order.")
    after = result.get("aftersales")
    if after:
        console.print(f"After-sales (MCF parcels followed to delivery): {after['mcf_orders']} MCF orders, "
                      f"{after['settled']} settled ({', '.join(f'{k} {v}' for k, v in after['outcomes'].items())}); "
                      f"per order {after['spapi_requests_per_order']} SP-API requests "
                      f"({after['tracking_reads_per_order']} tracking reads), {after['zendesk_requests_per_order']} "
                      f"Zendesk requests, {after['rms_page_loads_per_order']} RMS page loads, "
                      f"{after['seconds_per_order']} s.")
    seen = result["responses_429"]
    if "rms_full_logins" in result:
        console.print(f"RMS full logins (both stages and the notices): {result['rms_full_logins']} "
                      f"(credentials submitted: {result['rms_login_submissions']}); saved logins are reused between "
                      "passes, so a day needs few.")
    console.print(f"Rakuten orders placed {result['placed_orders']}: completed {result['completed']}, held "
                  f"{result['held']}, lost {result['lost']}.")
    verdict = ("every one retried successfully" if not result["held_because_of_429"]
               else f"{result['held_because_of_429']} order(s) held because a 429 never cleared")
    console.print(f"429s seen: {sum(seen.values())} (" + ", ".join(f"{k} {v}" for k, v in seen.items()) + "); "
                  f"{verdict}. A 429 is waited out inside the API call (Retry-After, the SP-API throttle); "
                  "when that wait runs out the step fails and the runner retries it "
                  f"({result['429_surfaced_to_runner_and_retried']} such steps).")


def run_robots_on_postgres(console: Console, *, robots: int, orders: int, seed: int, workdir: Path,
                           postgres: Any) -> dict[str, Any]:
    """The procedure-A day worked by ``robots`` `kuroko run --once` processes started together at each
    moment, on one PostgreSQL ledger; what each did, and what the world saw done twice."""
    import subprocess
    import sys

    from kuroko.ops.demo import TIMELINE, play_office_staff
    from sandbox.verdict import side_effects_twice

    url = postgres.new_database()
    sandbox = SandboxProcess(scenario="day", seed=seed, orders=orders, startup_seconds=300)
    with sandbox as admin:
        env = {**os.environ, **admin.robot_env(), "KUROKO_LEDGER_URL": url}
        ledger = Ledger(url)
        busy = 0.0
        pids: dict[int, int] = {}
        logs = workdir / f"robots-{robots}"
        logs.mkdir(parents=True, exist_ok=True)
        for label, delta in TIMELINE:
            if delta:
                admin.advance(**delta)
            play_office_staff(ledger, admin, Console(quiet=True))
            t0 = time.perf_counter()
            procs = []
            for n in range(1, robots + 1):
                robot_env = {**env, "KUROKO_DATA_DIR": str(workdir / f"robots-{robots}-data{n}")}
                with open(logs / f"{len(pids) + 1:03d}-robot{n}.log", "wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "kuroko.ops.cli", "run", "--once",
                         *(arg for name in PROCEDURE_A_DAY for arg in ("--procedure", name))],
                        env=robot_env, stdout=out, stderr=subprocess.STDOUT)
                pids[proc.pid] = n
                procs.append(proc)
            failed = [p.args for p in procs if p.wait(timeout=900) != 0]
            busy += time.perf_counter() - t0
            if failed:
                raise RuntimeError(f"a robot failed at '{label}'; see {logs}")
        items: dict[int, set[int]] = defaultdict(set)
        for worker, item_ids in ledger.steps_by_worker().items():
            items[pids.get(worker_pid(worker) or 0, 0)].update(item_ids)
        placed = {o["order_number"] for o in admin.get("/admin/orders")}
        known = {o.key: o for o in ledger.items() if o.key in placed}
        problems = side_effects_twice(admin.state(), admin.audit())
        ledger.close()
    minutes = busy / 60
    return {
        "robots": robots,
        "orders": len(placed),
        "settled": sum(o.state in ("done", "held") for o in known.values()),
        "robot_minutes": round(minutes, 2),
        "orders_per_minute": round(len(placed) / minutes, 1) if minutes else 0.0,
        "per_robot": {n: {"items": len(items[n]), "items_per_minute": round(len(items[n]) / minutes, 1)}
                      for n in range(1, robots + 1)},
        "duplicates": len(problems),
        "duplicate_examples": problems[:5],
    }


def print_robots(console: Console, runs: list[dict[str, Any]]) -> None:
    table = Table(title="Several robots on one PostgreSQL ledger (the procedure-A day, `kuroko run --once` each)")
    for col in ("robots", "orders", "settled", "wall min", "orders/min", "items each (per min)", "side effects twice"):
        table.add_column(col, justify="right")
    for run in runs:
        each = ", ".join(f"{r['items']} ({r['items_per_minute']})" for r in run["per_robot"].values())
        table.add_row(str(run["robots"]), str(run["orders"]), str(run["settled"]), f"{run['robot_minutes']:.2f}",
                      f"{run['orders_per_minute']:.1f}", each, str(run["duplicates"]))
    console.print(table)


def print_floor(console: Console, day: dict[str, Any], floor: dict[str, Any]) -> None:
    robot = day["paths"].get("mcf", {})
    table = Table(title=f"An MCF order: the robot against the floor (a bare script, same run): "
                        f"{floor['robot_over_floor']:.2f}× the floor's median")
    for col in ("", "orders", "median s", "p95 s", "BOSS loads", "RMS loads", "Zendesk req", "SP-API req"):
        table.add_column(col, justify="right" if col else "left")
    for name, row in (("robot", robot), ("floor", floor)):
        table.add_row(name, str(row.get("orders", 0)), f"{row.get('median_s', 0):.2f}", f"{row.get('p95_s', 0):.2f}",
                      f"{row.get('boss_page_loads', 0):.1f}", f"{row.get('rms_page_loads', 0):.1f}",
                      f"{row.get('zendesk_requests', 0):.1f}", f"{row.get('spapi_requests', 0):.1f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=40, help="the measured procedure-A day (0: skip)")
    parser.add_argument("--full", action="store_true",
                        help="also the 1,000-order day (make bench-full): is memory flat with the size of the day?")
    parser.add_argument("--full-orders", type=int, default=1000)
    parser.add_argument("--sites", action=argparse.BooleanOptionalAction, default=True,
                        help="the same day with every procedure (たまご, Bカート too): what further sites add")
    parser.add_argument("--floor-orders", type=int, default=8, help="MCF orders done by the bare script (0: skip)")
    parser.add_argument("--robots-orders", type=int, default=30,
                        help="the day worked by 1 and by 2 robots on PostgreSQL (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trace", default=None, choices=("retain-on-failure", "on", "off"),
                        help="Playwright traces (default: KUROKO_TRACE, off)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace the robot's Python allocations: what it holds after each pass, what grew")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=RESULTS / "bench.json", help="where the figures are written")
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    if args.orders:
        results["day"] = run_bench(console, orders=args.orders, seed=args.seed, data_dir=args.data_dir,
                                   trace=args.trace, floor_orders=args.floor_orders,
                                   python_growth=args.tracemalloc)
        print_result(console, results["day"])
        if "floor" in results["day"]:
            print_floor(console, results["day"], results["day"]["floor"])
    if args.orders and args.sites:
        results["all_sites"] = run_bench(console, orders=args.orders, seed=args.seed, procedures=None,
                                         data_dir=args.data_dir.with_name(args.data_dir.name + "-sites"))
        print_result(console, results["all_sites"])
    if args.robots_orders:
        from sandbox.postgres import ThrowawayPostgres

        postgres = ThrowawayPostgres().start()
        try:
            results["robots"] = [run_robots_on_postgres(console, robots=n, orders=args.robots_orders, seed=args.seed,
                                                        workdir=args.data_dir.with_name(args.data_dir.name + "-pg"),
                                                        postgres=postgres) for n in (1, 2)]
        finally:
            postgres.stop()
        print_robots(console, results["robots"])
    if args.full:
        results["full"] = run_bench(console, orders=args.full_orders, seed=args.seed + 1, trace=args.trace,
                                    data_dir=args.data_dir.with_name(args.data_dir.name + "-full"),
                                    python_growth=args.tracemalloc)
        print_result(console, results["full"])
    print_memory_summary(console, results)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    console.print(f"The bench took {results['bench_seconds']:.0f} s. Written: {args.out}")


def print_memory_summary(console: Console, results: dict[str, Any]) -> None:
    day = results.get("day")
    if not day:
        return
    peak = day["memory"]["peak_mib"]
    console.print(f"Peak memory (PSS) of robot + Playwright driver + Chromium, procedure-A day of {day['orders']} "
                  f"orders: {peak} MiB (goal ≤ 700).")
    sites = results.get("all_sites")
    if sites:
        console.print(f"With every procedure (たまご, Bカート too): {sites['memory']['peak_mib']} MiB, "
                      f"{sites['memory']['peak_mib'] - peak:+.1f} MiB; processes: {sites['memory']['most_processes']}.")
    full = results.get("full")
    if full:
        growth = (full["memory"]["peak_mib"] - peak) / peak * 100
        console.print(f"{full['orders']}-order day: {full['memory']['peak_mib']} MiB, {growth:+.1f}% against the "
                      f"{day['orders']}-order day (goal: within 15%).")


if __name__ == "__main__":
    main()
