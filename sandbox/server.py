"""Runs the whole sandbox in one process and one event loop: admin, BOSS, RMS, Zendesk, SP-API, たまご, Bカート,
each on its own 127.0.0.1 port, over one shared World."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import uvicorn
from fastapi import FastAPI

from sandbox.world import World

WINGS = {"boss": "sandbox.boss", "rms": "sandbox.rms", "zendesk": "sandbox.zendesk", "spapi": "sandbox.amazon",
         "tamago": "sandbox.tamago",
         "bcart": "sandbox.bcart"}
"""One wing per system: the service name (its port follows the admin port in this order) and the
package that serves it (``create_app(state)``, and optionally ``admin_router(state)`` for its knobs
under /admin/<system>/)."""
SERVICES = ("admin", *WINGS)
DEFAULT_BASE_PORT = 8100


class SandboxState:
    """Holds the current World; the admin API swaps it on reset, the apps read it per request."""

    def __init__(self, world: World) -> None:
        self.world = world


def wing_modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(module) for name, module in WINGS.items()}


def build_apps(state: SandboxState) -> dict[str, FastAPI]:
    from sandbox import admin

    apps = {"admin": admin.create_app(state)}
    for name, module in wing_modules().items():
        apps[name] = module.create_app(state)
    return apps


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(state: SandboxState, host: str, base_port: int | None, ready_file: Path | None,
                quiet: bool, scenario: str | None = None, seed: int = 1, orders: int | None = None) -> None:
    from sandbox.scenarios import apply_scenario

    sockets = {
        name: bind(host, 0 if base_port is None else base_port + i) for i, name in enumerate(SERVICES)
    }
    urls = {name: f"http://{host}:{sock.getsockname()[1]}" for name, sock in sockets.items()}
    state.world.urls = dict(urls)
    if scenario:
        apply_scenario(state.world, scenario, seed=seed, orders=orders)
    apps = build_apps(state)
    servers = [
        uvicorn.Server(uvicorn.Config(apps[name], log_level="warning", access_log=False, lifespan="off"))
        for name in SERVICES
    ]
    for server in servers:
        # One event loop serves all five; this module handles SIGINT/SIGTERM for all of them.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(s.serve(sockets=[sockets[n]])) for s, n in zip(servers, SERVICES, strict=True)]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
        await asyncio.sleep(0.02)
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(urls))
        os.replace(tmp, ready_file)
    if not quiet:
        print_banner(urls)
    await stop.wait()
    for s in servers:
        s.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def print_banner(urls: dict[str, str]) -> None:
    from sandbox.process import demo_credentials

    demo = demo_credentials()
    print("Kuroko sandbox is running (Ctrl+C stops it):")
    print(f"  admin API   {urls['admin']}/admin/state   (README: 'Sandbox admin API')")
    print(f"  BOSS        {urls['boss']}/login          user {demo['KUROKO_BOSS_USER']!r}, password "
          f"{demo['KUROKO_BOSS_PASSWORD']!r} (demo only)")
    print(f"  Rakuten RMS {urls['rms']}/login           user {demo['KUROKO_RMS_USER']!r}, password "
          f"{demo['KUROKO_RMS_PASSWORD']!r}, then 楽天会員 {demo['KUROKO_RMS_MEMBER_USER']!r}, password "
          f"{demo['KUROKO_RMS_MEMBER_PASSWORD']!r} (demo only)")
    print(f"  Zendesk     {urls['zendesk']}/api/v2/tickets.json   {demo['KUROKO_ZENDESK_EMAIL']} / token (demo)")
    print(f"  SP-API      {urls['spapi']}/fba/outbound/2020-07-01/fulfillmentOrders   LWA at /auth/o2/token")
    print(f"  たまご       {urls['tamago']}/login          user {demo['KUROKO_TAMAGO_USER']!r}, password "
          f"{demo['KUROKO_TAMAGO_PASSWORD']!r} (demo only)")
    print(f"  Bカート     {urls['bcart']}/login           user {demo['KUROKO_BCART_USER']!r}, password "
          f"{demo['KUROKO_BCART_PASSWORD']!r}; API {urls['bcart']}/api/v1 (Bearer token, demo)")
    print("Point the robot here with KUROKO_*_URL (the defaults already do for the default ports).", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sandbox", description="Kuroko's sandbox of BOSS, RMS, Zendesk, SP-API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                        help="admin on this port, then BOSS, RMS, Zendesk, SP-API, たまご, Bカート on the next six")
    parser.add_argument("--any-port", action="store_true", help="take free ports (tests)")
    parser.add_argument("--ready-file", type=Path, help="write the URLs here as JSON once serving")
    parser.add_argument("--scenario", help="seed a day of orders (see README)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=None, help="how many orders the scenario places")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    run(host=args.host, base_port=None if args.any_port else args.base_port, ready_file=args.ready_file,
        scenario=args.scenario, seed=args.seed, orders=args.orders, quiet=args.quiet)


def run(*, host: str = "127.0.0.1", base_port: int | None = DEFAULT_BASE_PORT, ready_file: Path | None = None,
        scenario: str | None = None, seed: int = 1, orders: int | None = None, quiet: bool = False) -> None:
    state = SandboxState(World(seed=seed))
    try:
        asyncio.run(serve(state, host, base_port, ready_file, quiet, scenario, seed, orders))
    except OSError as exc:
        raise SystemExit(
            f"The sandbox could not open its ports ({exc}). Is another sandbox running? "
            "Stop it, or pass --base-port with a free range."
        ) from exc


if __name__ == "__main__":
    main()
