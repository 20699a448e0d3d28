"""Shared fixtures: one sandbox process per test session (on free 127.0.0.1 ports, stopped at the
end), reset before each test that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.process import SandboxAdmin, SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-results"


Sandbox = SandboxAdmin


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with SandboxProcess(tmp_path_factory.mktemp("sandbox")) as admin:
        yield admin


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Sandbox:
    """The sandbox, reset to a stocked, empty world at 2026-11-20 09:00 JST."""
    sandbox_process.reset()
    return sandbox_process


@pytest.fixture
def settings_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every KUROKO_* URL at the sandbox and the data directory at a fresh folder."""
    for name, value in sandbox.robot_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KUROKO_DATA_DIR", str(tmp_path / "data"))
    from kuroko.settings import reload_settings

    reload_settings()
    return tmp_path / "data"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's browser is Debian's Chromium, launched with the project's flags."""
    from kuroko.browser import CHROMIUM_FLAGS
    from kuroko.settings import Settings

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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster for the session (tests/pg.py), started on first use."""
    from sandbox.postgres import ThrowawayPostgres

    cluster = ThrowawayPostgres().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """The URL of a fresh, empty PostgreSQL database."""
    return str(postgres.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger URL on each backend: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("pg_url"))
