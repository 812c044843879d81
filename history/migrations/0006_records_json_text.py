# Records' features and output: PostgreSQL json instead of jsonb (see history.fields).

import history.fields
from django.db import migrations

_TABLE = "history_predictionrecord"


def _alter(schema_editor, column_type: str) -> None:
    """Both columns in one ALTER TABLE: PostgreSQL rewrites the table (and its indexes) once."""
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite stores JSON as text either way: nothing to rewrite
    schema_editor.execute(
        f'ALTER TABLE "{_TABLE}" '
        f'ALTER COLUMN "features" TYPE {column_type} USING "features"::{column_type}, '
        f'ALTER COLUMN "output" TYPE {column_type} USING "output"::{column_type}'
    )


def to_json(apps, schema_editor) -> None:
    _alter(schema_editor, "json")


def to_jsonb(apps, schema_editor) -> None:
    _alter(schema_editor, "jsonb")


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0005_records_time_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="predictionrecord", name="features", field=history.fields.TextJSONField()
                ),
                migrations.AlterField(
                    model_name="predictionrecord", name="output", field=history.fields.TextJSONField()
                ),
            ],
            database_operations=[migrations.RunPython(to_json, to_jsonb)],
        ),
    ]
