"""Shared fixtures: one sandbox process per test session (on free 127.0.0.1 ports, stopped at the
end), reset before each test that asks for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-results"


@dataclass
class Sandbox:
    """A running sandbox, and its admin API in test words."""

    urls: dict[str, str]
    client: httpx.Client

    @property
    def admin(self) -> str:
        return self.urls["admin"]

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(self.admin + path, params=params or None)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.client.post(self.admin + path, json=body or {})
        r.raise_for_status()
        return r.json()

    def reset(self, seed: int = 1, scenario: str | None = "stocked", orders: int | None = None) -> Any:
        return self.post("/admin/reset", {"seed": seed, "scenario": scenario, "orders": orders})

    def advance(self, **delta: float) -> datetime:
        return datetime.fromisoformat(self.post("/admin/clock/advance", delta)["now"])

    def now(self) -> datetime:
        return datetime.fromisoformat(self.get("/admin/clock")["now"])

    def place_order(self, skus: dict[str, int] | list[str], **kw: Any) -> dict[str, Any]:
        return self.post("/admin/orders", {"skus": skus, **kw})

    def set_stock(self, rsl: dict[str, int] | None = None, fba: dict[str, int] | None = None) -> Any:
        return self.post("/admin/stock", {"rsl": rsl or {}, "fba": fba or {}})

    def fault(self, system: str, **knobs: Any) -> Any:
        return self.post("/admin/faults", {"system": system, **knobs})

    def clear_faults(self) -> None:
        self.client.delete(self.admin + "/admin/faults").raise_for_status()

    def order(self, order_number: str) -> dict[str, Any]:
        return self.get(f"/admin/orders/{order_number}")

    def state(self) -> dict[str, Any]:
        return self.get("/admin/state")

    def audit(self, system: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        return self.get("/admin/audit", **{k: v for k, v in {"system": system, "action": action}.items() if v})


def start_sandbox(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = workdir / "sandbox-urls.json"
    ready.unlink(missing_ok=True)
    log = open(workdir / "sandbox.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--any-port", "--quiet", "--ready-file", str(ready)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox exited with {proc.returncode}; see {workdir / 'sandbox.log'}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the sandbox did not start within 60 s")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    proc, urls = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    client = httpx.Client(timeout=30)
    try:
        yield Sandbox(urls, client)
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Sandbox:
    """The sandbox, reset to a stocked, empty world at 2026-11-20 09:00 JST."""
    sandbox_process.reset()
    return sandbox_process


@pytest.fixture
def settings_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every KUROKO_* URL at the sandbox and the data directory at a fresh folder."""
    for name in ("boss", "rms", "zendesk", "spapi"):
        monkeypatch.setenv(f"KUROKO_{name.upper()}_URL", sandbox.urls[name])
    monkeypatch.setenv("KUROKO_LWA_URL", sandbox.urls["spapi"])
    monkeypatch.setenv("KUROKO_CLOCK_URL", sandbox.admin + "/admin/clock")
    monkeypatch.setenv("KUROKO_DATA_DIR", str(tmp_path / "data"))
    from bots.settings import get_settings

    get_settings.cache_clear()
    return tmp_path / "data"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's browser is Debian's Chromium, launched with the project's flags."""
    from bots.browser import CHROMIUM_FLAGS
    from bots.settings import Settings

    return {**browser_type_launch_args, "executable_path": str(Settings().browser_path),
            "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "locale": "ja-JP", "timezone_id": "Asia/Tokyo"}


def screenshot_path(name: str) -> Path:
    """Where a test keeps a screenshot a person may look at (test-results/screens/)."""
    path = RESULTS / "screens" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
