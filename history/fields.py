from __future__ import annotations

from django.db import models


class TextJSONField(models.JSONField):
    """A JSONField stored as PostgreSQL ``json`` (the validated text) rather than ``jsonb``.

    For prediction records, written far more often than anything looks inside them:
    converting to ``jsonb`` was ~5 of the server's ~18 µs per row of a bulk COPY (measured
    with bench/bulk_breakdown.py). Key reads (``->``, ``->>``, KeyTextTransform) work on
    both types, at a price paid only by the rare query that reads inside: grouping 1,000,000
    records by a feature (a segmented trend) takes ~1.0 s on ``json`` against ~0.3 s on
    ``jsonb``. What ``json`` lacks is equality and containment (``=``, ``@>``, DISTINCT),
    which no history query uses. SQLite stores text either way.
    """

    def db_type(self, connection) -> str:
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)


def json_loaded_as_text(sender, connection, **kwargs) -> None:
    """Have psycopg hand ``json`` values over as text, as Django has it do for ``jsonb``.

    Connected to ``connection_created``. psycopg would otherwise decode them itself, and
    JSONField.from_db_value would then be given Python values instead of the text it decodes.
    """
    if connection.vendor != "postgresql":
        return
    from psycopg.types.string import TextLoader

    connection.connection.adapters.register_loader("json", TextLoader)
