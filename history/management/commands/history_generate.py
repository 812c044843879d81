"""Fill prediction history with a realistic data set, fast: the benchmark's ten million records.

    manage.py history_generate --records 10000000 --days 365

Inputs come from each model's own generator and outputs from its trained versions (two per
model: the second trained on drifted data takes over at 60 % of the span, so trends and
comparisons have something to show). Records are spread over the span ending now: single
API predictions, synchronous batches, bulk-job chunks and scheduled runs, with batch rows
sharing their timestamp as real ones do. A share of records older than a week gets an outcome
from the generator's ground truth. Rows are written with COPY on PostgreSQL and executemany
on SQLite, in time order with increasing ids, then the closed hours are rolled up.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import orjson
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Max

from history.kinds import error_applies
from history.models import Outcome, PredictionRecord
from history.services import rollups_refresh
from predictions.artifacts import artifact_load
from predictions.catalog import CATALOG
from predictions.models import ModelVersion
from predictions.services import mlmodels_sync_catalog, model_train, training_data_generated

# Share of rows per source, and the rows one request or job chunk writes at once.
SOURCES = {
    "api": (0.30, (1, 1)),
    "batch": (0.30, (20, 2_000)),
    "bulk": (0.25, (1_000, 10_000)),
    "scheduled": (0.15, (100, 3_000)),
}
SECOND_VERSION_AT = 0.6  # of the span: when each model's second version takes over
SECOND_VERSION_DRIFT = 0.4  # the world the second version's inputs come from
TRAINING_ROWS = 5_000  # enough for plausible outputs; training quality is not what is measured
ENTITIES_PER_MODEL = 50_000
WRITE_CHUNK = 200_000  # rows per COPY block / executemany call
COPY_STREAMS = 2


@dataclass
class Pool:
    """Distinct rows of one model version, serialised once and reused for every record."""

    version_id: int
    features: list[str]
    outputs: list[str]
    scores: np.ndarray
    truths: np.ndarray  # the realised value per row, NaN where the model has none

    def __post_init__(self) -> None:
        # COPY's text format: backslashes doubled (JSON text escapes with them), NULL as \N.
        self.copy_features = [text.replace("\\", "\\\\") for text in self.features]
        self.copy_outputs = [text.replace("\\", "\\\\") for text in self.outputs]
        self.copy_scores = ["\\N" if np.isnan(score) else repr(float(score)) for score in self.scores]


class Command(BaseCommand):
    help = "Generate prediction history (records, outcomes, roll-ups) for benchmarks and demos."

    def add_arguments(self, parser):
        parser.add_argument("--records", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--distinct", type=int, default=20_000, help="Distinct input rows per model version.")
        parser.add_argument("--outcome-share", type=float, default=0.1, help="Share of records with an outcome.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--drop-indexes",
            action="store_true",
            help="Empty table only: drop the records' indexes for the load and build them after (faster).",
        )

    def handle(self, *args, **options):
        if options["records"] < 1 or options["days"] < 1 or not 0 <= options["outcome_share"] <= 1:
            raise CommandError("--records and --days must be positive, --outcome-share between 0 and 1.")
        started = time.perf_counter()
        pools = self._pools(options["distinct"], options["seed"])
        self.stdout.write(f"pools ready in {time.perf_counter() - started:.1f}s")
        plan = _plan(options["records"], options["days"], len(CATALOG), np.random.default_rng(options["seed"]))
        self.stdout.write(f"plan of {len(plan['time']):,} records in {time.perf_counter() - started:.1f}s")
        first_id = (PredictionRecord.objects.aggregate(top=Max("id"))["top"] or 0) + 1
        written = time.perf_counter()
        if options["drop_indexes"]:
            if first_id > 1 or PredictionRecord.objects.exists():
                raise CommandError("--drop-indexes is for an empty records table.")
            with connection.schema_editor() as editor:
                for index in PredictionRecord._meta.indexes:
                    editor.remove_index(PredictionRecord, index)
        try:
            outcome_rows = self._write(plan, pools, first_id, options["outcome_share"], options["seed"])
        finally:
            if options["drop_indexes"]:
                self._rebuild_indexes()
        self.stdout.write(
            f"wrote {len(plan['time']):,} records and {outcome_rows:,} outcomes in {time.perf_counter() - written:.1f}s"
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        rolled = time.perf_counter()
        rows = rollups_refresh()
        self.stdout.write(f"rolled up {rows:,} hour rows in {time.perf_counter() - rolled:.1f}s")
        self.stdout.write(f"total {time.perf_counter() - started:.1f}s")

    def _rebuild_indexes(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '512MB'")  # sorts in memory, not in temp files
        for index in PredictionRecord._meta.indexes:
            started = time.perf_counter()
            with connection.schema_editor() as editor:
                editor.add_index(PredictionRecord, index)
            self.stdout.write(f"  index {index.name} built in {time.perf_counter() - started:.1f}s")

    # --- Model versions and their rows ------------------------------------------------------

    def _pools(self, distinct: int, seed: int) -> list[list[Pool]]:
        """Per model (catalog order): [first version pool, second version pool]."""
        mlmodels_sync_catalog()
        pools = []
        for slug, spec in CATALOG.items():
            versions = list(ModelVersion.objects.filter(model__slug=slug).order_by("number")[:2])
            while len(versions) < 2:
                drift = 0.0 if not versions else SECOND_VERSION_DRIFT
                data = training_data_generated(spec=spec, rows=TRAINING_ROWS, seed=seed + len(versions), drift=drift)
                versions.append(model_train(slug=slug, data=data, created_by="manage.py history_generate"))
            model_pools = []
            for index, version in enumerate(versions):
                frame = spec.generate(distinct, seed=seed + 100 + index, drift=SECOND_VERSION_DRIFT * index)
                artifact = artifact_load(relative_path=version.artifact_path, sha256=version.sha256)
                outputs = spec.predict(artifact, frame[spec.feature_names()])
                truth_column = spec.target.name if spec.target else "truth_is_anomaly"
                model_pools.append(
                    Pool(
                        version_id=version.pk,
                        features=[_json(row) for row in frame[spec.feature_names()].to_dict("records")],
                        outputs=[_json(output) for output in outputs],
                        scores=np.array([output[spec.main_score] for output in outputs], dtype=float),
                        truths=frame[truth_column].to_numpy(dtype=float),
                    )
                )
            pools.append(model_pools)
            self.stdout.write(f"  {slug}: versions {[v.number for v in versions]}")
        return pools

    # --- Writing ----------------------------------------------------------------------------

    def _write(self, plan: dict, pools: list[list[Pool]], first_id: int, outcome_share: float, seed: int) -> int:
        rng = np.random.default_rng(seed + 1)
        count = len(plan["time"])
        ids = np.arange(first_id, first_id + count, dtype=np.int64)
        model_ids = _model_ids()
        slugs = list(CATALOG)
        row = rng.integers(0, min(len(pool[0].features) for pool in pools), count)
        entity = rng.integers(1, ENTITIES_PER_MODEL + 1, count)
        version_index = (plan["time"] >= plan["switch"]).astype(np.int64)
        postgres = connection.vendor == "postgresql"
        stamps = np.datetime_as_string(plan["time"].astype("datetime64[us]"), unit="us")
        stamps = np.char.add(np.char.replace(stamps, "T", " "), "+00" if postgres else "")
        columns = {
            "id": ids,
            "model": plan["model"],
            "version": version_index,
            "row": row,
            "entity": entity,
            "stamp": stamps,
            "source": plan["source"],
            "group": plan["group"],
        }
        ranges = [(start, min(start + WRITE_CHUNK, count)) for start in range(0, count, WRITE_CHUNK)]
        with transaction.atomic():
            if postgres:
                # Two COPY streams: the server's JSONB parsing, not this process, is what limits a load.
                with ThreadPoolExecutor(max_workers=COPY_STREAMS) as executor:
                    done = executor.map(lambda r: _copy_in_thread(_slice(columns, *r), pools, slugs, model_ids), ranges)
                    for stop in done:
                        self.stdout.write(f"  {stop:,} records")
            else:
                for start, stop in ranges:
                    _insert_rows(_slice(columns, start, stop), pools, slugs, model_ids)
                    self.stdout.write(f"  {stop:,} records")
            if postgres:  # ids were given explicitly: move the identity sequence past them
                with connection.cursor() as cursor:
                    table = PredictionRecord._meta.db_table
                    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, int(ids[-1])])
        return self._write_outcomes(plan, pools, ids, row, version_index, outcome_share, rng, model_ids, slugs)

    def _write_outcomes(self, plan, pools, ids, row, version_index, share, rng, model_ids, slugs) -> int:
        """Outcomes for a random share of records older than a week, known a week after."""
        week = np.timedelta64(7, "D")
        old = plan["time"] < plan["time"].max() - week
        chosen = np.flatnonzero(old & (rng.random(len(ids)) < share))
        rows = []
        for i in chosen.tolist():
            model = plan["model"][i]
            pool = pools[model][version_index[i]]
            truth = pool.truths[row[i]]
            if np.isnan(truth):
                continue
            score = pool.scores[row[i]]
            error = float(score - truth) if error_applies(slugs[model]) else None
            observed = (plan["time"][i] + week).astype("datetime64[us]").item()
            rows.append((int(ids[i]), model_ids[slugs[model]], float(truth), error, observed, observed))
        _write_outcomes(rows)
        return len(rows)


def _plan(records: int, days: int, models: int, rng: np.random.Generator) -> dict:
    """Who predicted what when: arrays of time, model, source and group, sorted by time."""
    end = np.datetime64("now", "us")
    span = np.timedelta64(days * 86_400_000_000, "us")
    start = end - span
    parts = {"time": [], "model": [], "source": [], "group": []}
    group_counter = 1
    for source, (share, (low, high)) in SOURCES.items():
        target = (
            int(records * share)
            if source != "api"
            else records - sum(int(records * s) for name, (s, _) in SOURCES.items() if name != "api")
        )
        sizes = []
        total = 0
        while total < target:
            size = int(min(rng.integers(low, high + 1), target - total))
            sizes.append(size)
            total += size
        sizes = np.array(sizes, dtype=np.int64)
        times = start + (rng.random(len(sizes)) * span.astype(np.int64)).astype("timedelta64[us]")
        models_of = rng.integers(0, models, len(sizes))
        groups = np.arange(group_counter, group_counter + len(sizes), dtype=np.int64)
        group_counter += len(sizes)
        parts["time"].append(np.repeat(times, sizes))
        parts["model"].append(np.repeat(models_of, sizes))
        parts["source"].append(np.full(int(sizes.sum()), source, dtype=object))
        parts["group"].append(np.repeat(groups, sizes))
    plan = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.argsort(plan["time"], kind="stable")
    plan = {name: values[order] for name, values in plan.items()}
    plan["switch"] = start + (span * SECOND_VERSION_AT).astype("timedelta64[us]")
    return plan


def _model_ids() -> dict[str, int]:
    from predictions.models import MLModel

    return dict(MLModel.objects.values_list("slug", "pk"))


def _json(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


_RECORD_COLUMNS = (
    "id", "model_id", "version_id", "created_at", "source", "correlation_id", "api_key_prefix", "entity_id",
    "features", "output", "main_score", "latency_ms", "bulk_job_id", "scheduled_execution_id",
)  # fmt: skip
_OUTCOME_COLUMNS = ("prediction_id", "model_id", "value", "error", "observed_at", "recorded_at")


def _slice(columns: dict, start: int, stop: int) -> dict:
    return {"stop": stop, **{name: values[start:stop].tolist() for name, values in columns.items()}}


def _copy_in_thread(chunk: dict, pools, slugs, model_ids) -> int:
    """One chunk in its own connection and transaction (a thread of its own)."""
    try:
        with transaction.atomic():
            _copy_lines(chunk, pools, slugs, model_ids)
    finally:
        connection.close()
    return chunk["stop"]


def _copy_lines(columns: dict, pools, slugs, model_ids) -> None:
    """PostgreSQL: COPY in its text format, lines built here (about 3x write_row's speed)."""
    lines = []
    for i in range(len(columns["id"])):
        model = columns["model"][i]
        pool = pools[model][columns["version"][i]]
        k, source, group = columns["row"][i], columns["source"][i], columns["group"][i]
        bulk = str(uuid.UUID(int=group)) if source == "bulk" else "\\N"
        scheduled = str(group) if source == "scheduled" else "\\N"
        lines.append(
            f"{columns['id'][i]}\t{model_ids[slugs[model]]}\t{pool.version_id}\t{columns['stamp'][i]}\t{source}\t"
            f"gen-{group}\tbench000\t{slugs[model]}-{columns['entity'][i]}\t{pool.copy_features[k]}\t"
            f"{pool.copy_outputs[k]}\t{pool.copy_scores[k]}\t0.4\t{bulk}\t{scheduled}\n"
        )
    table = connection.ops.quote_name(PredictionRecord._meta.db_table)
    names = ", ".join(connection.ops.quote_name(name) for name in _RECORD_COLUMNS)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        copy.write("".join(lines))


def _insert_rows(columns: dict, pools, slugs, model_ids) -> None:
    rows = []
    for i in range(len(columns["id"])):
        model = columns["model"][i]
        pool = pools[model][columns["version"][i]]
        k, source, group = columns["row"][i], columns["source"][i], columns["group"][i]
        score = pool.scores[k]
        rows.append(
            (
                columns["id"][i],
                model_ids[slugs[model]],
                pool.version_id,
                columns["stamp"][i],
                source,
                f"gen-{group}",
                "bench000",
                f"{slugs[model]}-{columns['entity'][i]}",
                pool.features[k],
                pool.outputs[k],
                None if np.isnan(score) else float(score),
                0.4,
                str(uuid.UUID(int=group)) if source == "bulk" else None,
                group if source == "scheduled" else None,
            )
        )
    _write(PredictionRecord._meta.db_table, _RECORD_COLUMNS, rows, postgres=False)


def _write_outcomes(rows: list[tuple]) -> None:
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    for start in range(0, len(rows), WRITE_CHUNK):
        chunk = [(*row[:4], adapt(_aware(row[4])), adapt(_aware(row[5]))) for row in rows[start : start + WRITE_CHUNK]]
        with transaction.atomic():
            _write(Outcome._meta.db_table, _OUTCOME_COLUMNS, chunk, postgres)


def _aware(value):
    from datetime import UTC

    return value.replace(tzinfo=UTC)


def _write(table: str, columns: tuple[str, ...], rows: list[tuple], postgres: bool) -> None:
    quoted = connection.ops.quote_name(table)
    names = ", ".join(connection.ops.quote_name(name) for name in columns)
    with connection.cursor() as cursor:
        if postgres:
            with cursor.cursor.copy(f"COPY {quoted} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {quoted} ({names}) VALUES ({placeholders})", rows)  # noqa: S608
