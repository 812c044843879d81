from __future__ import annotations

from typing import Any

from django.db import models


class TextJSONField(models.JSONField):
    """A JSONField stored as PostgreSQL ``json`` (the validated text) rather than ``jsonb``.

    For prediction records, written far more often than anything looks inside them:
    converting to ``jsonb`` was ~5 of the server's ~18 µs per row of a bulk COPY (measured
    with bench/bulk_breakdown.py). Key reads (``->``, ``->>``, KeyTextTransform) work on
    both types, at a price paid only by the rare query that reads inside: grouping 1,000,000
    records by a feature (a segmented trend) takes ~1.0 s on ``json`` against ~0.3 s on
    ``jsonb``. SQLite stores text either way.

    On PostgreSQL ``json`` has no equality, ordering or key-existence operators, so these
    fail there (and only there): ``filter(features__key=...)``, ``features__has_key``,
    ``features__contains``, ``order_by("features__key")``, DISTINCT over the column. Read a
    key as text instead (KeyTextTransform, as history.aggregates does).
    """

    def db_type(self, connection) -> str:
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def from_db_value(self, value: Any, expression, connection) -> Any:
        # Decoded already if the driver parsed ``json`` itself (see json_loaded_as_text).
        if value is not None and not isinstance(value, str):
            return value
        return super().from_db_value(value, expression, connection)


def json_loaded_as_text(sender, connection, **kwargs) -> None:
    """Have psycopg hand ``json`` values over as text, as Django has it do for ``jsonb``.

    Connected to ``connection_created``. psycopg would otherwise decode them itself, and a
    JSON string that reads as a number (``"123"``) would come back as one.
    """
    if connection.vendor != "postgresql" or not hasattr(connection.connection, "adapters"):
        return  # SQLite; or psycopg2, whose decoded values from_db_value passes through
    from psycopg.types.string import TextLoader

    connection.connection.adapters.register_loader("json", TextLoader)
