"""One clock for the robot and the sandbox.

In production the robot reads the machine's clock. Against the sandbox it reads the sandbox's
clock over HTTP, so that tests and the demo move time forward ("31 minutes later", "next day")
instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import httpx


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SandboxClock:
    """Reads ``GET {url}`` → ``{"now": ISO-8601}``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(timeout=10)

    def now(self) -> datetime:
        response = self._client.get(self.url)
        response.raise_for_status()
        return datetime.fromisoformat(response.json()["now"]).astimezone(UTC)


def clock_from_url(url: str | None) -> Clock:
    return SandboxClock(url) if url else SystemClock()
