"""Alembic's environment for the ledger: always given a connection by ``kuroko.migrations``
(programmatic configuration, no alembic.ini), so it never opens one of its own."""

from __future__ import annotations

from alembic import context

from kuroko.ledger import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
