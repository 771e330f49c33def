"""Persistence: the schema (``models``), migrations (``db.upgrade``), engines and queries.

``db`` builds engines and sessions; ``service`` (with ``outbox``) holds every query, each taking the
session keyword-only and leaving the commit to the caller.
"""
