# Records' features and output compressed with lz4 instead of pglz when PostgreSQL stores them
# out of line (documents over ~2 KB: about a third of demand's records, some of pricing's and
# budget's). lz4 costs the server a fraction of pglz's CPU: demand's 10,000-row batch went from
# 236 to 168 ms of PostgreSQL CPU for its COPY (bench/README.md). Rows already stored keep their
# compression; PostgreSQL reads both.

from django.db import migrations, transaction
from django.db.utils import NotSupportedError

_TABLE = "history_predictionrecord"


def _set_compression(schema_editor, method: str) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return  # column compression methods arrived in PostgreSQL 14; SQLite does not compress
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute(
                f'ALTER TABLE "{_TABLE}" '
                f'ALTER COLUMN "features" SET COMPRESSION {method}, '
                f'ALTER COLUMN "output" SET COMPRESSION {method}'
            )
    except NotSupportedError:
        # A server built without lz4 refuses the method (feature_not_supported): pglz stays,
        # which is only slower. Any other error (a lock, a permission) fails the migration.
        if method != "lz4":
            raise


def to_lz4(apps, schema_editor) -> None:
    _set_compression(schema_editor, "lz4")


def to_default(apps, schema_editor) -> None:
    _set_compression(schema_editor, "DEFAULT")  # the server's default_toast_compression


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0006_records_json_text"),
    ]

    operations = [migrations.RunPython(to_lz4, to_default)]
