"""The sandbox's amazon wing."""

from sandbox.amazon.app import admin_router, create_app

__all__ = ["admin_router", "create_app"]
