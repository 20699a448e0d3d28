"""`make bench` itself (issue 15): a small run of every part — the procedure-A day with memory per
kind of process, the floor beside the robot's MCF order, and the day worked by 1 and 2 robots on
PostgreSQL — writes its figures. The figures themselves are the benchmark's business, not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_the_bench_measures_memory_by_process_the_floor_and_one_against_two_robots(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "kuroko.ops.bench", "--orders", "12", "--floor-orders", "2", "--robots-orders", "4",
         "--no-sites", "--data-dir", str(tmp_path / "bench"), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))

    day = figures["day"]
    assert day["lost"] == 0 and day["paths"]["mcf"]["completed"] > 0
    kinds = day["memory"]["at_peak_mib"]
    assert {"robot (Python)", "Playwright driver (node)", "Chromium browser", "Chromium renderer"} <= set(kinds)
    assert abs(sum(kinds.values()) - day["memory"]["peak_mib"]) < 1, "the peak, split by kind of process"
    assert len(day["memory"]["after_each_pass_mib"]) == len(day["passes"])

    floor = day["floor"]
    assert floor["orders"] == 2 and floor["rms_page_loads"] >= 14 and floor["spapi_requests"] >= 3
    assert floor["robot_over_floor"] > 0
    assert "the robot against the floor" in result.stdout.replace("\n", " ")

    one, two = figures["robots"]
    assert (one["robots"], two["robots"]) == (1, 2)
    for run in (one, two):
        assert run["settled"] == run["orders"] == 4 and run["duplicates"] == 0, run
    assert sum(r["items"] for r in two["per_robot"].values()) >= two["orders"]


def test_python_growth_names_the_call_site_that_holds_memory_after_a_pass() -> None:
    """`--tracemalloc`: after a pass, the memory the pass kept is traced back to where it was made."""
    from rich.console import Console

    from kuroko.ops.bench import PythonGrowth

    growth = PythonGrowth(Console(quiet=True), frames=1, top=3)
    try:
        kept = [bytearray(64 * 1024) for _ in range(64)]  # 4 MiB a "pass" holds on to
        growth.mark("a pass")
    finally:
        growth.stop()
    [after] = growth.passes
    assert after["traced_mib"] >= 4 and after["pass_peak_mib"] >= after["traced_mib"]
    assert "test_bench.py" in after["grown_since_start"][0], after["grown_since_start"]
    assert len(kept) == 64
