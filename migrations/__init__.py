"""Alembic migrations of the handoff schema (packaged; run with ``storage.db.upgrade``)."""
