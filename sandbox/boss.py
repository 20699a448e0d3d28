"""Placeholder until the boss app lands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from sandbox.faults import install_faults

if TYPE_CHECKING:
    from sandbox.server import SandboxState


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="boss (sandbox)")
    install_faults(app, state, "boss")
    return app
