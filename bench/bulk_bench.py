"""Bulk prediction job benchmark: a large churn CSV from submit to completed, peak RSS of every process.

    .venv/bin/python bench/bulk_bench.py                         # embedded: SQLite, file-system broker
    .venv/bin/python bench/bulk_bench.py --postgres --redis      # PostgreSQL + Redis on 127.0.0.1

It trains churn into a scratch folder, writes a CSV of ``--rows`` generated clients (not
timed), starts gunicorn (one worker) and one Celery worker with ``--concurrency`` prefork
processes on the ``predictions`` queue (native thread pools pinned to one thread), runs a small
warm-up job so that each worker process has loaded the model, then measures one job:

- end to end: from the start of the upload to the status ``completed`` seen by polling, history
  records included (every row is recorded in history, in the chunk's transaction);
- the upload and split (the POST's duration), the job's own queued and running times;
- the peak RSS (VmHWM, plus sampling every 50 ms) of every process: gunicorn master and
  worker, Celery main and pool processes, this client;
- the results download, streamed.

PostgreSQL uses the database ``modelops_bulk_bench`` (dropped and created again); Redis uses
databases 6 (broker) and 7 (cache), flushed first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PINNED_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def prepare(env: dict[str, str]) -> str:
    run([PYTHON, "manage.py", "migrate", "--noinput"], env)
    run([PYTHON, "manage.py", "train_models", "--model", "churn"], env)
    script = (
        "import django; django.setup();"
        "from accounts.services import user_ensure, api_key_create;"
        "u,_=user_ensure(username='bench', role='predictor');"
        "print(api_key_create(user=u, name='bench', role='predictor', tier='unlimited')[1])"
    )
    return run([PYTHON, "-c", script], env).strip()


def write_csv(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from predictions.catalog import CATALOG

    spec = CATALOG["churn"]
    frame = spec.generate(rows, seed=11)[spec.feature_names()]
    frame.insert(0, "entity_id", [f"client-{i}" for i in range(rows)])
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)


def start(env: dict[str, str], port: int, concurrency: int, logs: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    env = {**env, **PINNED_THREADS}
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "600"],
        cwd=ROOT,
        env=env,
        stdout=(logs / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    worker_log = logs / "worker.log"
    command = [str(BIN / "celery"), "-A", "config", "worker", "--queues", "predictions"]
    command += ["--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
    worker = subprocess.Popen(
        [*command, "--hostname", "bench@%h"],
        cwd=ROOT,
        env=env,
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            if len(children(worker.pid)) >= concurrency:
                return web, worker
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn or celery did not start; see {logs}")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class PeakRSS(threading.Thread):
    """Samples the RSS of a set of process trees; VmHWM (the kernel's peak) is read too."""

    def __init__(self, roots: dict[str, int]):
        super().__init__(daemon=True)
        self.roots, self.peaks, self.names = roots, {}, {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            time.sleep(0.05)

    def sample(self) -> None:
        for name, root in self.roots.items():
            pids = [(name, root)] + [(f"{name} child", pid) for pid in children(root)]
            for label, pid in pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                rss = max(_kb(status, "VmRSS"), _kb(status, "VmHWM"))
                self.names[pid] = label
                self.peaks[pid] = max(self.peaks.get(pid, 0), rss)


def _kb(status: str, field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+)", status)
    return int(found.group(1)) if found else 0


def submit(port: int, key: str, path: Path, chunk_size: int | None, output_format: str) -> dict:
    boundary = uuid.uuid4().hex
    fields = {"model": "churn", "output_format": output_format}
    if chunk_size:
        fields["chunk_size"] = str(chunk_size)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'.encode() for n, v in fields.items()
    )
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                yield block
        yield tail

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/bulk-predictions",
        data=body(),
        method="POST",
        headers={
            "X-API-Key": key,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
        },
    )
    with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
        return json.loads(answer.read())


def get(port: int, key: str, path: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
        return json.loads(answer.read())


def wait(port: int, key: str, job: dict, timeout: float = 1800) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] in ("pending", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job not finished after {timeout}s: {job}")
        time.sleep(0.1)
        job = get(port, key, job["url"])
    return job


def download_lines(port: int, key: str, path: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"X-API-Key": key})
    lines = 0
    with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
        while block := answer.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL on 127.0.0.1 (modelops_bulk_bench).")
    parser.add_argument("--redis", action="store_true", help="Redis on 127.0.0.1: broker db 6, cache db 7.")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery pool processes.")
    parser.add_argument("--chunk-size", type=int, help="Rows per chunk (default: BULK_CHUNK_ROWS, 10,000).")
    parser.add_argument("--output-format", default="csv", choices=["csv", "jsonl", "parquet"])
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="modelops-bulk-bench-"))
    env = {
        **os.environ,
        "VAR_DIR": str(scratch),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RATE_LIMIT_PER_IP": "100000000/min",
        "MAX_UPLOAD_BYTES": str(2 * 1024**3),
    }
    if args.postgres:
        server = ["-h", "127.0.0.1", "-U", "postgres"]
        subprocess.run(["dropdb", *server, "--if-exists", "modelops_bulk_bench"], check=True)
        subprocess.run(["createdb", *server, "modelops_bulk_bench"], check=True)
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/modelops_bulk_bench"
    if args.redis:
        for db in ("6", "7"):
            subprocess.run(["redis-cli", "-n", db, "flushdb"], check=True, capture_output=True)
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/6"
        env["CACHE_URL"] = "redis://127.0.0.1:6379/7"
    setup = "PostgreSQL + Redis" if args.postgres else "embedded (SQLite + file-system broker)"
    print(f"setup: {setup}; scratch folder {scratch}")
    key = prepare(env)
    csv_path = scratch / "churn.csv"
    write_csv(csv_path, args.rows)
    print(f"input: {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB")

    web, worker = start(env, args.port, args.concurrency, scratch)
    sampler = PeakRSS({"gunicorn": web.pid, "celery": worker.pid})
    try:
        warm = scratch / "warm.csv"
        write_csv(warm, 4_000)
        wait(args.port, key, submit(args.port, key, warm, 1_000, args.output_format))
        sampler.start()
        started = time.perf_counter()
        job = submit(args.port, key, csv_path, args.chunk_size, args.output_format)
        submitted = time.perf_counter() - started
        job = wait(args.port, key, job)
        elapsed = time.perf_counter() - started
        sampler.sample()
        download_started = time.perf_counter()
        lines = download_lines(args.port, key, job["results_url"])
        download_seconds = time.perf_counter() - download_started
        sampler.sample()
    finally:
        sampler.stopped.set()
        for process in (web, worker):
            process.terminate()
        for process in (web, worker):
            process.wait(timeout=60)
    client_peak = _kb(Path("/proc/self/status").read_text(), "VmHWM")

    print(f"status: {job['status']} {job['error']}")
    print(f"rows done {job['rows_done']:,}, failed {job['rows_failed']:,}, chunks {job['chunks_total']}")
    print(f"end to end (upload start -> completed seen): {elapsed:.2f} s = {job['rows_done'] / elapsed:,.0f} rows/s")
    print(f"  upload + check + split (the POST): {submitted:.2f} s")
    print(f"  queued {job['timings']['queued_seconds']} s, running {job['timings']['running_seconds']} s")
    print(f"results download ({args.output_format}): {lines:,} lines in {download_seconds:.2f} s")
    print("peak RSS per process (MB):")
    for pid, peak in sorted(sampler.peaks.items(), key=lambda item: sampler.names[item[0]]):
        print(f"  {sampler.names[pid]:<16} pid {pid:<8} {peak / 1024:8.1f}")
    print(f"  {'bench client':<16} pid {os.getpid():<8} {client_peak / 1024:8.1f}")


if __name__ == "__main__":
    main()
