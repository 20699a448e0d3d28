"""The sandbox's rms wing."""

from sandbox.rms.app import admin_router, create_app

__all__ = ["admin_router", "create_app"]
