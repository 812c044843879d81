"""Prediction serving benchmark: the full stack against the plain model call, per model.

    .venv/bin/python bench/predict_bench.py                       # embedded SQLite + file cache
    .venv/bin/python bench/predict_bench.py --postgres --redis    # PostgreSQL + Redis on 127.0.0.1
    .venv/bin/python bench/predict_bench.py --postgres --redis --server granian  # the same behind granian

It trains the seven models into a scratch folder, starts gunicorn (4 sync workers, two per
core as the README advises; native thread pools pinned to one thread) or, for comparison,
granian with as many processes, and measures for each model:
- the plain call in this process: the catalog's ``predict`` on one row, and on 10,000 rows;
- single predictions through HTTP (auth, rate limit, validation, prediction, history record)
  with wrk at concurrency 8: requests/s and latency percentiles;
- ``/batch`` with 10,000 rows, history included: rows/s;
- the RSS of each web worker once every model has answered single predictions, and its peak
  (VmHWM) and final RSS after every batch.
Prints a Markdown table; results stand in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def run(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def prepare(env: dict[str, str]) -> str:
    run([PYTHON, "manage.py", "migrate", "--noinput"], env)
    run([PYTHON, "manage.py", "train_models", "--if-none-active"], env)
    script = (
        "import django; django.setup();"
        "from accounts.services import user_ensure, api_key_create;"
        "u,_=user_ensure(username='bench', role='predictor');"
        "print(api_key_create(user=u, name='bench', role='predictor', tier='premium')[1])"
    )
    return run([PYTHON, "-c", script], env).strip()


def plain_calls(env: dict[str, str], only: list[str] | None) -> dict[str, dict[str, float]]:
    """One-row and 10,000-row latency of the catalog predict call, in this process."""
    os.environ.update(env)
    import django

    django.setup()
    import pandas as pd
    from sklearn_calls import SCIKIT_LEARN_CALLS  # bench/ is on the path: this script's folder

    from config.gc import tune_for_serving
    from predictions.catalog import CATALOG
    from predictions.serving import registry

    tune_for_serving()  # as the web and Celery processes do
    results = {}
    for slug, spec in CATALOG.items():
        if not only or slug in only:
            # The registry serves the exported artifact; the plain call needs scikit-learn's own
            # objects, fitted here on the same kind of data.
            fitted = spec.fit(spec.generate(spec.default_training_rows, seed=0), seed=0)
            results[slug] = _timings(spec, registry.get(slug).artifact, fitted, SCIKIT_LEARN_CALLS[slug], pd)
    return results


def _timings(spec, artifact, fitted, sklearn_call, pd) -> dict[str, float]:
    many = spec.generate(10_000, seed=99)[spec.feature_names()]
    return {
        "one_row_ms": _median_ms(lambda: spec.predict(artifact, spec.feature_frame([spec.example_row()]))),
        "rows_per_s": 10_000 / _seconds(lambda: spec.predict(artifact, many)),
        # What a straightforward view does: a one-row DataFrame into the pipeline.
        "sklearn_one_row_ms": _median_ms(lambda: sklearn_call(fitted, pd.DataFrame([spec.example_row()]))),
        "sklearn_rows_per_s": 10_000 / _seconds(lambda: sklearn_call(fitted, many)),
    }


def _median_ms(action, calls: int = 300, warm_up: int = 50) -> float:
    timings = [_seconds(action) * 1000 for _ in range(warm_up + calls)]
    return statistics.median(timings[warm_up:])


def _seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def server_command(server: str, port: int, workers: int, threads: int) -> list[str]:
    """gunicorn (the README's server: sync workers, one connection per request) or granian
    (HTTP handled in Rust, connections kept alive), each with ``workers`` processes."""
    if server == "granian":
        return [
            str(BIN / "granian"),
            "config.wsgi:application",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--runtime-mode",
            "st",
            "--no-access-log",
        ]
    return [
        str(BIN / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--access-logfile",
        "/dev/null",
        "--log-level",
        "warning",
    ]


def start_server(env: dict[str, str], command: list[str], port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,  # the JSON request log is written, as in production, and discarded
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{command[0]} did not start")


def wrk_single(port: int, key: str, slug: str, body: dict, seconds: int, folder: Path) -> dict[str, float]:
    script = folder / f"{slug}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-API-Key"] = "{key}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/api/{slug}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    percent = {p: _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1)) for p in ("50", "99")}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": percent["50"],
        "p99_ms": percent["99"],
        "non2xx": int(re.search(r"non2xx (\d+)", out).group(1)),
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def batch_rows_per_s(port: int, key: str, slug: str, rows: list[dict], repeats: int = 3) -> float:
    body = json.dumps({"rows": [{"features": row} for row in rows]}).encode()
    timings = []
    for _ in range(repeats):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/{slug}/batch",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-API-Key": key},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as answer:  # noqa: S310
            assert answer.status == 200
            answer.read()
        timings.append(time.perf_counter() - started)
    return len(rows) / statistics.median(timings)


def worker_memory_mb(server: subprocess.Popen, field: str) -> list[float]:
    """``field`` of /proc/<pid>/status (VmRSS, VmHWM) of each web worker process, in MB."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024)
    return sizes


def listed_mb(sizes: list[float]) -> str:
    return ", ".join(f"{size:.0f}" for size in sizes) + " MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--postgres", action="store_true", help="Use PostgreSQL on 127.0.0.1 (database modelops_bench)."
    )
    parser.add_argument("--redis", action="store_true", help="Use Redis on 127.0.0.1 for cache and broker.")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per model.")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--server", choices=["gunicorn", "granian"], default="gunicorn", help="WSGI server.")
    parser.add_argument("--workers", type=int, default=4, help="Web worker processes.")
    parser.add_argument(
        "--threads", type=int, default=1, help="Threads per worker (gunicorn >1: gthread; granian: blocking threads)."
    )
    parser.add_argument("--models", nargs="*", help="Only these slugs (default: all seven).")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
    # Rate limits stay on (counted on every request) but high enough never to refuse one.
    env = {
        **os.environ,
        "VAR_DIR": str(scratch),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RATE_LIMIT_PER_IP": "100000000/min",
        "RATE_LIMIT_TIERS": "basic=60/min,standard=600/min,premium=100000000/min,unlimited=none",
    }
    if args.postgres:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "modelops_bench"], check=True)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", "modelops_bench"], check=True)
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/modelops_bench"
    if args.redis:
        env["CACHE_URL"] = "redis://127.0.0.1:6379/12"
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/11"
    key = prepare(env)
    plain = plain_calls(env, args.models)

    from predictions.catalog import CATALOG

    server = start_server(env, server_command(args.server, args.port, args.workers, args.threads), args.port)
    try:
        slugs = [slug for slug in CATALOG if not args.models or slug in args.models]
        singles = {
            slug: wrk_single(args.port, key, slug, {"features": CATALOG[slug].example_row()}, args.seconds, scratch)
            for slug in slugs
        }
        loaded = worker_memory_mb(server, "VmRSS")
        batches = {}
        for slug in slugs:
            batch = CATALOG[slug].generate(10_000, seed=7)[CATALOG[slug].feature_names()].to_dict("records")
            batches[slug] = batch_rows_per_s(args.port, key, slug, batch)
        peaks, final = worker_memory_mb(server, "VmHWM"), worker_memory_mb(server, "VmRSS")
        rows = [(slug, plain[slug], singles[slug], batches[slug]) for slug in slugs]
    finally:
        server.terminate()
        server.wait()

    backend = f"{'PostgreSQL' if args.postgres else 'SQLite'} + {'Redis' if args.redis else 'file cache'}"
    setup = f"{args.server} {args.workers} workers x {args.threads} threads, wrk -t2 -c8 -d{args.seconds}s"
    print(f"\n{backend}, {setup}, batch of 10,000 rows\n")
    print(
        "| model | scikit-learn call, 1 row (ms) | catalog predict, 1 row (ms) | scikit-learn, rows/s "
        "| catalog predict, rows/s | HTTP single req/s | p50 ms | p99 ms | non-2xx | HTTP batch rows/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for slug, p, s, b in rows:
        print(
            f"| {slug} | {p['sklearn_one_row_ms']:.2f} | {p['one_row_ms']:.2f} | {p['sklearn_rows_per_s']:,.0f} "
            f"| {p['rows_per_s']:,.0f} | {s['rps']:,.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['non2xx']} "
            f"| {b:,.0f} |"
        )
    print(f"\nRSS per web worker after the single predictions (models loaded): {listed_mb(loaded)}")
    print(f"after every batch: {listed_mb(final)}; peak (VmHWM): {listed_mb(peaks)}")


if __name__ == "__main__":
    main()
