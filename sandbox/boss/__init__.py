"""The sandbox's boss wing."""

from sandbox.boss.app import create_app

__all__ = ["create_app"]
