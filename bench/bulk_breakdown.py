"""Where one bulk chunk's time goes, step by step, in-process (CPU seconds, not wall time).

    VAR_DIR=<a bench scratch folder> [DATABASE_URL=...] .venv/bin/python bench/bulk_breakdown.py

Run it against the scratch folder (and database) ``bench/bulk_bench.py`` printed: it takes
the last job's first chunk and processes it again, ``--repeats`` times, inside a transaction
that is rolled back, measuring CPU time (``time.process_time``) so that other load on the
machine matters less than for wall time. The steps are those of ``bulk_chunk_process``. On
PostgreSQL (on this machine) it also reads the CPU time of the connection's server process,
which parses and indexes the history COPY. Then ``predictions_make`` is split with cProfile, in
as many more passes, into its validation, the model and the history write.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import django

    django.setup()
    from config.gc import tune_for_serving

    tune_for_serving()  # as each Celery pool process does at start-up
    from django.core.files.storage import default_storage
    from django.db import transaction

    from predictions import bulk_files
    from predictions.catalog import get_catalog_model
    from predictions.models import BulkJob
    from predictions.services import Caller, predictions_make

    job = BulkJob.objects.select_related("model").order_by("-created_at").first()
    chunk = job.chunks.get(index=0)
    spec = get_catalog_model(job.model.slug)
    steps: dict[str, list[float]] = {}

    def timed(name, call):
        started = time.process_time()
        result = call()
        steps.setdefault(name, []).append(time.process_time() - started)
        return result

    server_cpu = _server_cpu_reader()

    def one_chunk():
        with default_storage.open(chunk.input_path, "rb") as handle:
            data = timed("read the chunk file", handle.read)
        parsed = timed("parse and convert to rows", lambda: bulk_files.read_chunk(data, spec=spec, suffix="parquet"))
        with transaction.atomic():
            server_started = server_cpu()
            caller = Caller(source="bulk", correlation_id="breakdown", bulk_job_id=job.pk)
            batch = timed(
                "predictions_make (validate, predict, record)",
                lambda: predictions_make(
                    slug=job.model.slug,
                    rows=parsed.rows,
                    entity_ids=parsed.entity_ids,
                    caller=caller,
                    partial=True,
                    version_id=job.version_id,
                ),
            )
            timed(
                "result part",
                lambda: bulk_files.result_part(
                    output_format=job.output_format,
                    indexes=list(range(len(batch.outputs))),
                    entity_ids=[parsed.entity_ids[i] for i in batch.indexes],
                    prediction_ids=batch.prediction_ids,
                    outputs=batch.outputs,
                ),
            )
            if server_started is not None:
                steps.setdefault("PostgreSQL server process (COPY)", []).append(server_cpu() - server_started)
            transaction.set_rollback(True)

    one_chunk()  # loads the model
    steps.clear()
    for _ in range(args.repeats):
        one_chunk()
    rows = chunk.row_count
    print(f"{job.model.slug}, {rows:,}-row chunk, median of {args.repeats}, CPU seconds (µs per row):")
    for name, values in steps.items():
        median = statistics.median(values)
        print(f"  {name:<48} {median:7.3f} s ({median / rows * 1e6:6.1f} µs/row)")
    profile = cProfile.Profile()
    for _ in range(args.repeats):
        profile.enable()
        one_chunk()
        profile.disable()
    stats = pstats.Stats(profile)
    parts = {
        "validate_rows": "validation (predictions.catalog.validation)",
        "feature_frame": "rows to a DataFrame (catalog)",
        "predict": "model predict (catalog)",
        "write": "history rows out (history.services)",
        "_insert_rows": "history insert at the end (SQLite)",
    }
    print("  inside predictions_make (cProfile, cumulative, wall):")
    for (_file, _line, function), (_, _, _, cumulative, _) in stats.stats.items():
        if function in parts and ("catalog" in _file or "history" in _file):
            per_chunk = cumulative / args.repeats
            print(f"    {parts[function]:<46} {per_chunk:7.3f} s ({per_chunk / rows * 1e6:6.1f} µs/row)")


def _server_cpu_reader():
    """A function returning the CPU seconds of this connection's PostgreSQL server process.

    It returns None on SQLite (no server process), and the server must run on this machine.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        return lambda: None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime and stime, after the name

    return read


if __name__ == "__main__":
    main()
