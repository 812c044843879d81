"""Prediction history at scale: trends, listings, batch records, outcomes, retention.

    .venv/bin/python bench/history_bench.py --postgres --generate --records 10000000
    .venv/bin/python bench/history_bench.py --generate --records 1000000      # embedded SQLite

``--generate`` first empties the history tables of the benchmark database and fills them with
``manage.py history_generate`` (seven models, 365 days, COPY); without it the data already
there is used. Then, in this process (Django's test client, so the whole middleware stack,
API-key authentication and rate limiting included, but no HTTP server):

- a 90-day daily trend of one model (p50 of 20 calls);
- the first and the 1,000th page of a filtered listing (model + source, 50 per page; the
  1,000th reached by following 999 next links), p50 of 20 calls each;
- ``prediction_records_create`` with 10,000-row calls (the batch path), records/s;
- ``outcomes_record`` with 10,000 outcomes per call, and ``POST /api/history/outcomes``;
- retention of ~1,000,000 expired records in a separate process while this one makes single
  predictions (``predictions_make``, one row, recorded), their latency before and during.

PostgreSQL: ``--database-url`` (default the history database on 127.0.0.1) and Redis for the
cache. Embedded: SQLite and the file cache under var/bench-history-sqlite. Prints Markdown.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
PG_URL = "postgres://postgres@127.0.0.1:5432/modelops_hist"
REDIS_CACHE = "redis://127.0.0.1:6379/13"
HISTORY_TABLES = (
    "history_outcome", "history_outcomeimport", "history_hourlyrollup", "history_maintenancestate",
    "history_retentionpolicy", "history_predictionrecord",
)  # fmt: skip


def environment(args) -> dict[str, str]:
    if args.postgres:
        extra = {
            "DATABASE_URL": args.database_url,
            "CACHE_URL": REDIS_CACHE,
            "VAR_DIR": str(ROOT / "var/bench-history-pg"),
        }
    else:
        extra = {"VAR_DIR": str(ROOT / "var/bench-history-sqlite")}
    extra["CELERY_BROKER_URL"] = "memory://"  # nothing here sends tasks; never touch a shared broker
    extra["OMP_NUM_THREADS"] = "1"
    return {**os.environ, **extra}


def manage(env: dict[str, str], *command: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout


def generate(env: dict[str, str], records: int) -> float:
    manage(env, "migrate", "--noinput")
    postgres = env.get("DATABASE_URL", "").startswith("postgres")
    # Constant table names, this module's own.
    statements = [f"TRUNCATE {', '.join(HISTORY_TABLES)}"] if postgres else [f"DELETE FROM {t}" for t in HISTORY_TABLES]  # noqa: S608
    empty = "from django.db import connection\nwith connection.cursor() as c:\n" + "".join(
        f"    c.execute({statement!r})\n" for statement in statements
    )
    manage(env, "shell", "-c", empty)
    started = time.perf_counter()
    output = manage(env, "history_generate", "--records", str(records), "--days", "365", "--drop-indexes")
    elapsed = time.perf_counter() - started
    print("```\n" + output.strip() + "\n```")
    return elapsed


def timed(action, repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--database-url", default=PG_URL)
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--model", default="churn")
    parser.add_argument("--skip-retention", action="store_true")
    args = parser.parse_args()
    env = environment(args)
    Path(env["VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    generated = generate(env, args.records) if args.generate else None

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    results = run(args, env)
    if generated is not None:
        results.insert(0, ("generate the data set (records, outcomes, indexes, roll-ups)", f"{generated:.0f} s"))
    print("\n| measurement | result |\n|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")


def run(args, env) -> list[tuple[str, str]]:
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from accounts.roles import Tier
    from accounts.services import api_key_create, user_ensure
    from history.models import PredictionRecord

    user, _ = user_ensure(username="history-bench", role="predictor")
    _, raw_key = api_key_create(user=user, name="history bench", role="predictor", tier=Tier.UNLIMITED)
    client = Client(HTTP_X_API_KEY=raw_key)
    results: list[tuple[str, str]] = []
    total = PredictionRecord.objects.count()
    results.append(("records in the database", f"{total:,} ({connection.vendor})"))
    now = timezone.now()

    # --- Trends ---------------------------------------------------------------------------
    params = {"model": args.model, "granularity": "day", "start": (now - timedelta(days=90)).isoformat()}

    def trend_call():
        response = client.get("/api/history/trends", params)
        assert response.status_code == 200, response.content[:300]

    times = timed(trend_call, 20)
    results.append((f"90-day daily trend of {args.model}, p50 / p90 of 20 (target <= 200 ms)",
                    f"{statistics.median(times):.1f} / {percentile(times, 90):.1f} ms"))  # fmt: skip
    paris = {**params, "tz": "Europe/Paris"}
    times = timed(lambda: client.get("/api/history/trends", paris), 10)
    results.append(("same in Europe/Paris, p50", f"{statistics.median(times):.1f} ms"))
    year = {"model": args.model, "granularity": "week", "start": (now - timedelta(days=365)).isoformat()}
    times = timed(lambda: client.get("/api/history/trends", year), 5)
    results.append(("365-day weekly trend, p50", f"{statistics.median(times):.1f} ms"))

    # --- Listing --------------------------------------------------------------------------
    listing = {"model": args.model}
    first = timed(lambda: client.get("/api/history/predictions", listing), 20)
    url, walk = "/api/history/predictions", []
    query = dict(listing)
    for _ in range(999):
        started = time.perf_counter()
        page = client.get(url, query).json()
        walk.append((time.perf_counter() - started) * 1000)
        url, query = page["next"], {}
        if not url:
            break
    if url:
        deep = timed(lambda: client.get(url), 20)
        results.append((f"listing model={args.model}, first page of 50, p50 of 20 (target <= 50 ms)",
                        f"{statistics.median(first):.1f} ms"))  # fmt: skip
        results.append(("same, 1,000th page, p50 of 20 (target <= 50 ms)", f"{statistics.median(deep):.1f} ms"))
        results.append(
            ("pages 2..1,000 on the way, p50 / p99", f"{statistics.median(walk):.1f} / {percentile(walk, 99):.1f} ms")
        )
    else:
        results.append(("listing", f"fewer than 1,000 pages ({len(walk)})"))

    # --- Batch path -----------------------------------------------------------------------
    results += batch_records(args.model)
    results += outcomes(args.model, client)
    times = timed(trend_call, 10)
    label = "90-day daily trend again, with those 100,000 records and outcomes in the hour not rolled up yet, p50"
    results.append((label, f"{statistics.median(times):.1f} ms"))
    if not args.skip_retention:
        results += retention(args, env)
    return results


def batch_records(slug: str) -> list[tuple[str, str]]:
    from django.utils import timezone

    from history.services import RecordContext, prediction_records_create
    from predictions.catalog import CATALOG
    from predictions.selectors import active_pointer
    from predictions.serving import registry

    spec = CATALOG[slug]
    artifact = registry.get(slug).artifact
    frame = spec.generate(10_000, seed=77)[spec.feature_names()]
    features = frame.to_dict("records")
    outputs = spec.predict(artifact, frame)
    pointer = active_pointer(slug)
    rates = []
    for call in range(10):
        context = RecordContext(
            model_id=pointer.model_id,
            version_id=pointer.version_id,
            source="batch",
            correlation_id=f"bench-batch-{call}",
            api_key_prefix="bench000",
            created_at=timezone.now(),
        )
        started = time.perf_counter()
        prediction_records_create(
            context=context,
            features=features,
            outputs=outputs,
            entity_ids=[f"bench-{i}" for i in range(10_000)],
            main_scores=[o[spec.main_score] for o in outputs],
            latency_ms=0.1,
        )
        rates.append(10_000 / (time.perf_counter() - started))
    return [("prediction_records_create, 10,000-row calls, median of 10 (target >= 20,000/s)",
             f"{statistics.median(rates):,.0f} records/s (min {min(rates):,.0f})")]  # fmt: skip


def outcomes(slug: str, client) -> list[tuple[str, str]]:
    from history.models import PredictionRecord
    from history.services import OutcomeItem, outcomes_record
    from predictions.catalog import CATALOG

    # The records the batch path above just wrote: recent, and without outcomes.
    ids = sorted(
        PredictionRecord.objects.filter(model__slug=slug, correlation_id__startswith="bench-batch-")
        .order_by("-id")
        .values_list("id", flat=True)[:100_000]
    )
    label = CATALOG[slug].target.kind == "binary"
    rates = []
    for start in range(0, 80_000, 10_000):
        items = [
            OutcomeItem(prediction_id=i, value=(i % 2) if label else float(i % 97)) for i in ids[start : start + 10_000]
        ]
        started = time.perf_counter()
        report = outcomes_record(slug=slug, items=items)
        rates.append(10_000 / (time.perf_counter() - started))
        assert report.recorded == 10_000, report
    http = []
    for start in range(80_000, 100_000, 10_000):
        body = {"model": slug, "outcomes": [{"prediction_id": i, "value": i % 2} for i in ids[start : start + 10_000]]}
        started = time.perf_counter()
        response = client.post("/api/history/outcomes", body, content_type="application/json")
        http.append(10_000 / (time.perf_counter() - started))
        assert response.json()["recorded"] == 10_000, response.content[:300]
    again = [OutcomeItem(prediction_id=i, value=(i % 2) if label else float(i % 97)) for i in ids[:10_000]]
    started = time.perf_counter()
    repeated = outcomes_record(slug=slug, items=again)
    repeat_rate = 10_000 / (time.perf_counter() - started)
    return [
        ("outcomes_record, 10,000 by prediction id per call, median of 8 (target >= 20,000/s)",
         f"{statistics.median(rates):,.0f} outcomes/s (min {min(rates):,.0f})"),
        ("POST /api/history/outcomes, 10,000 per call (JSON parsing included), median of 2",
         f"{statistics.median(http):,.0f} outcomes/s"),
        ("the same 10,000 outcomes sent again (all unchanged)",
         f"{repeat_rate:,.0f} outcomes/s, {repeated.unchanged:,} unchanged"),
    ]  # fmt: skip


def retention(args, env) -> list[tuple[str, str]]:
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from history.models import PredictionRecord
    from history.selectors import TrendQuery, trend
    from history.services import retention_policy_set, rollups_refresh
    from predictions.catalog import CATALOG
    from predictions.models import MLModel
    from predictions.services import Caller, predictions_make

    rollups_refresh()
    now = timezone.now()
    # The retention age at which at least 1,000,000 records (a tenth, in a small data set) are expired.
    target = min(1_000_000, PredictionRecord.objects.count() // 10)
    last = PredictionRecord.objects.order_by("created_at", "id").values_list("created_at", flat=True)[target - 1]
    days = (now - last).days
    cutoff = now - timedelta(days=days)
    expiring = PredictionRecord.objects.filter(created_at__lt=cutoff).count()
    model = MLModel.objects.get(slug=args.model)
    # Up to today's start: buckets are whole days, and the predictions made meanwhile land today.
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    query = TrendQuery(model=model, start=end - timedelta(days=400), end=end, granularity="day", zone=ZoneInfo("UTC"))
    before = trend(query)["series"]

    row = CATALOG[args.model].example_row()
    caller = Caller(source="api", correlation_id="bench-single")

    def predict():
        predictions_make(slug=args.model, rows=[row], entity_ids=["bench"], caller=caller)

    baseline = timed(predict, 300, warmup=20)
    retention_policy_set(max_age_days=days, updated_by="bench")
    script = (
        "import time; from history.services import retention_apply; t = time.perf_counter(); r = retention_apply(); "
        "print(r.deleted_records, r.deleted_outcomes, r.batches, round(time.perf_counter() - t, 1))"
    )
    process = subprocess.Popen(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    during = []
    while process.poll() is None:
        started = time.perf_counter()
        predict()
        during.append((time.perf_counter() - started) * 1000)
    deleted, deleted_outcomes, batches, seconds = process.stdout.read().split()[-4:]
    after = trend(query)["series"]
    retention_policy_set(max_age_days=None, updated_by="bench")
    return [
        (f"retention: expired records (older than {days} days)", f"{expiring:,}"),
        ("retention run (separate process, batches of HISTORY_RETENTION_BATCH_ROWS ids)",
         f"{int(deleted):,} records + {int(deleted_outcomes):,} outcomes in {float(seconds):.0f} s, {batches} batches"),
        ("single predictions before retention, p50 / p99 of 300",
         f"{statistics.median(baseline):.1f} / {percentile(baseline, 99):.1f} ms"),
        (f"single predictions during retention, p50 / p99 of {len(during)} (target p99 <= 50 ms)",
         f"{statistics.median(during):.1f} / {percentile(during, 99):.1f} ms"),
        ("400-day daily trend the same before and after retention (floats to 1e-9)", str(same(before, after))),
    ]  # fmt: skip


def same(a, b, path: str = "") -> bool:
    """Equal, floats to a relative 1e-9 (sums added in another order differ in the last bits);
    the first difference is printed."""
    if isinstance(a, float) and isinstance(b, float):
        equal = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    elif isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], f"{path}.{k}") for k in a)
    elif isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)))
    else:
        equal = a == b
    if not equal:
        print(f"trend differs at {path}: {a!r} then {b!r}", file=sys.stderr)
    return equal


if __name__ == "__main__":
    main()
