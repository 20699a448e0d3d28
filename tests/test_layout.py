"""The layout holds: the engine imports no procedure, the sandbox nothing of the robot (import-linter
contracts in pyproject.toml), and nothing in the repository points outside it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_file_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared")
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]
    for package in ("bots", "kuroko", "pages", "services", "sandbox", "schedules", "selectors"):
        files += [p for p in (ROOT / package).rglob("*") if p.suffix in (".py", ".md", ".toml", ".yaml", ".html")]
    offending = [f"{p.relative_to(ROOT)}:{n}" for p in files
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert offending == [], f"files that send the reader to ../shared: {offending}"
    assert (ROOT / "docs").is_dir() and any((ROOT / "docs").glob("**/*.md")), "the project documents itself in docs/"
