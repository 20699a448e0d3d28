"""Starting the sandbox as a child process on free ports, and talking to its admin API — used by
the tests, `kuroko demo` and the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SandboxAdmin:
    """A running sandbox, and its admin API in plain words."""

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

    def summary(self) -> dict[str, Any]:
        return self.get("/admin/summary")

    def audit(self, system: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        return self.get("/admin/audit", **{k: v for k, v in {"system": system, "action": action}.items() if v})

    # --- たまごリピート (README: 'Sandbox admin API') ------------------------------------------------
    def tamago_order(self, reason: str | None = None, **body: Any) -> dict[str, Any]:
        """A たまご order flagged with ``reason`` (data made to fit); returns its full state."""
        return self.post("/admin/tamago/orders", {"reason": reason, **body})

    def tamago_customer(self, **body: Any) -> dict[str, Any]:
        return self.post("/admin/tamago/customers", body)

    def tamago(self, order_id: str) -> dict[str, Any]:
        """A たまご order's full state, with its field-change history."""
        return self.get(f"/admin/tamago/orders/{order_id}")

    # --- Bカート: what its customers and the shop's people do, and what it keeps -----------------
    def bcart_order(self, payment: str = "請求書払い", items: list[dict[str, Any]] | None = None,
                    destinations: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
        """A business customer orders: ``items`` for one destination, or ``destinations`` each with
        its own ``items`` ([{"product_no": "BC-SIM30-20G", "quantity": 2}])."""
        body = {"payment": payment, "items": items or [], "destinations": destinations or [], **kw}
        return self.post("/admin/bcart/orders", body)

    def bcart_state(self, order_id: int) -> dict[str, Any]:
        return self.get(f"/admin/bcart/orders/{order_id}")

    def bcart_payment_seen(self, order_id: int, day: str | None = None) -> dict[str, Any]:
        """A person enters 決済確認日 (default: today on the sandbox clock)."""
        return self.post(f"/admin/bcart/orders/{order_id}/payment", {"date": day} if day else {})

    def bcart_mails(self, order_id: int | None = None, template: str | None = None) -> list[dict[str, Any]]:
        return self.get("/admin/bcart/mails", **{k: v for k, v in {"order_id": order_id, "template": template}.items()
                                                  if v is not None})

    def robot_env(self) -> dict[str, str]:
        """KUROKO_* variables that point the robot at this sandbox."""
        systems = ("boss", "rms", "zendesk", "spapi", "tamago", "bcart")
        env = {f"KUROKO_{name.upper()}_URL": self.urls[name] for name in systems}
        env["KUROKO_LWA_URL"] = self.urls["spapi"]
        env["KUROKO_CLOCK_URL"] = self.admin + "/admin/clock"
        return {**env, **demo_credentials()}

    @staticmethod
    def claims_env() -> dict[str, str]:
        """KUROKO_* variables that give the robot the sandbox's claims address and its registered
        senders (not in ``robot_env``: a robot without them leaves the claims address alone)."""
        from sandbox.amazon.case_mail import CLAIMS_ADDRESS, FORWARDING_AGENT, REGISTERED_SENDER

        return {"KUROKO_CLAIMS_RECIPIENT": CLAIMS_ADDRESS,
                "KUROKO_CLAIMS_SENDERS": f"{REGISTERED_SENDER[1]},{FORWARDING_AGENT[1]}"}


def demo_credentials() -> dict[str, str]:
    """The sandbox's own demo logins, as the KUROKO_* settings that give them to the robot."""
    from sandbox.amazon.app import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN
    from sandbox.bcart.app import demo_credentials as bcart_demo
    from sandbox.boss.app import DEMO_PASSWORD as BOSS_PASSWORD
    from sandbox.boss.app import DEMO_USER as BOSS_USER
    from sandbox.rms.app import DEMO_MEMBER_PASSWORD as RMS_MEMBER_PASSWORD
    from sandbox.rms.app import DEMO_MEMBER_USER as RMS_MEMBER_USER
    from sandbox.rms.app import DEMO_PASSWORD as RMS_PASSWORD
    from sandbox.rms.app import DEMO_USER as RMS_USER
    from sandbox.tamago.app import DEMO_PASSWORD as TAMAGO_PASSWORD
    from sandbox.tamago.app import DEMO_USER as TAMAGO_USER
    from sandbox.zendesk.store import DEMO_AGENT_EMAIL, DEMO_API_TOKEN

    bcart = bcart_demo()
    return {
        "KUROKO_BCART_USER": bcart["user"], "KUROKO_BCART_PASSWORD": bcart["password"],
        "KUROKO_BCART_API_TOKEN": bcart["api_token"],
        "KUROKO_BOSS_USER": BOSS_USER, "KUROKO_BOSS_PASSWORD": BOSS_PASSWORD,
        "KUROKO_RMS_USER": RMS_USER, "KUROKO_RMS_PASSWORD": RMS_PASSWORD,
        "KUROKO_RMS_MEMBER_USER": RMS_MEMBER_USER, "KUROKO_RMS_MEMBER_PASSWORD": RMS_MEMBER_PASSWORD,
        "KUROKO_ZENDESK_EMAIL": DEMO_AGENT_EMAIL, "KUROKO_ZENDESK_TOKEN": DEMO_API_TOKEN,
        "KUROKO_LWA_CLIENT_ID": DEMO_CLIENT_ID, "KUROKO_LWA_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "KUROKO_SPAPI_REFRESH_TOKEN": DEMO_REFRESH_TOKEN,
        "KUROKO_TAMAGO_USER": TAMAGO_USER, "KUROKO_TAMAGO_PASSWORD": TAMAGO_PASSWORD,
    }


class SandboxProcess:
    """``with SandboxProcess() as sandbox: ...`` — started on free 127.0.0.1 ports, stopped after."""

    def __init__(self, workdir: Path | None = None, *, scenario: str | None = None, seed: int = 1,
                 orders: int | None = None, startup_seconds: float = 60) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kuroko-sandbox-"))
        self.scenario, self.seed, self.orders = scenario, seed, orders
        self.startup_seconds = startup_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin: SandboxAdmin | None = None

    def __enter__(self) -> SandboxAdmin:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        return self.workdir / "sandbox.log"

    def start(self) -> SandboxAdmin:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "sandbox-urls.json"
        ready.unlink(missing_ok=True)
        args = [sys.executable, "-m", "sandbox", "--any-port", "--quiet", "--ready-file", str(ready),
                "--seed", str(self.seed)]
        if self.scenario:
            args += ["--scenario", self.scenario]
        if self.orders:
            args += ["--orders", str(self.orders)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.startup_seconds
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the sandbox did not start within {self.startup_seconds:.0f} s; see {self.log_path}")
            time.sleep(0.05)
        self.admin = SandboxAdmin(json.loads(ready.read_text()), httpx.Client(timeout=60))
        return self.admin

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.client.close()
            self.admin = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
