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
import statistics
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kuroko.ledger import Ledger, WorkItem
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


class PeakMemory:
    """Samples the memory (PSS) of this process plus its children (Chromium, Playwright's driver) —
    but not the sandbox, which is measured apart."""

    def __init__(self, exclude: int | None = None, interval: float = 0.25) -> None:
        self.exclude = exclude
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            excluded = {self.exclude, *(_descendants(self.exclude) if self.exclude else [])}
            pids = [me, *(p for p in _descendants(me) if p not in excluded)]
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(p) for p in pids))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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


def run_bench(console: Console, *, orders: int, seed: int, data_dir: Path) -> dict[str, Any]:
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
        connections = Connections(settings)
        progress: PassProgress | PlainProgress = (PassProgress(console) if console.is_terminal
                                                  else PlainProgress(console))
        for plan in AFTERSALES_PLANS:
            admin.post("/admin/amazon/plans/next", plan)
        with PeakMemory(exclude=sandbox_pid) as memory, progress:
            runner = Runner(settings, ledger, connections, clock_from_url(settings.clock_url),
                            listener=progress.listener)
            for label, delta in [*TIMELINE, *AFTERSALES_TIMELINE]:
                if delta:
                    admin.advance(**delta)
                play_office_staff(ledger, admin, Console(quiet=True))
                t0 = time.perf_counter()
                report = runner.run_pass()
                progress.finish()
                list_reads = report.counters.get("boss_list_reads", 0)
                passes.append({"pass": label, "orders_run": report.items_run, "boss_list_reads": list_reads,
                               "seconds": round(time.perf_counter() - t0, 2)})
                console.print(f"  {label}: {report.items_run} orders, BOSS list read {list_reads}×, "
                              f"{passes[-1]['seconds']} s")
            connections.close()
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
            "peak_memory_mib": round(memory.peak_kib / 1024, 1),
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
        ledger.close()
    return result


def print_result(console: Console, result: dict[str, Any]) -> None:
    table = Table(title=f"{result['orders']} orders in {result['wall_seconds']} s; peak memory (robot + Chromium) "
                        f"{result['peak_memory_mib']} MiB")
    for col in ("path", "orders", "completed", "median s/order", "p95 s/order", "BOSS loads", "RMS loads",
                "Zendesk req", "SP-API req"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for path, row in result["paths"].items():
        table.add_row(path, str(row["orders"]), str(row["completed"]), f"{row['median_s']:.2f}", f"{row['p95_s']:.2f}",
                      f"{row['boss_page_loads']:.1f}", f"{row['rms_page_loads']:.1f}",
                      f"{row['zendesk_requests']:.1f}", f"{row['spapi_requests']:.1f}")
    console.print(table)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200, help="the measured day (0: skip)")
    parser.add_argument("--load-orders", type=int, default=1000, help="the load day (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {}
    if args.orders:
        results["day"] = run_bench(console, orders=args.orders, seed=args.seed, data_dir=args.data_dir)
        print_result(console, results["day"])
    if args.load_orders:
        results["load"] = run_bench(console, orders=args.load_orders, seed=args.seed + 1,
                                    data_dir=args.data_dir.with_name(args.data_dir.name + "-load"))
        print_result(console, results["load"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    console.print(f"Written: {RESULTS / 'bench.json'}")


if __name__ == "__main__":
    main()
