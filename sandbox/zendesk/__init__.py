"""The sandbox's zendesk wing."""

from sandbox.zendesk.app import admin_router, create_app

__all__ = ["admin_router", "create_app"]
