"""The sandbox's Bカート (B-cart) wing: admin screens and the REST API on one port."""

from sandbox.bcart.app import admin_router, create_app

__all__ = ["admin_router", "create_app"]
