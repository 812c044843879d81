"""Score a whole CSV file with a bulk prediction job: submit, wait with a progress bar, download.

Standard library only (it builds on examples/client.py). Needs a role of predictor or above:

    MODELOPS_API_KEY=<key> python examples/bulk_client.py churn clients.csv --out scores.csv

The CSV has a header row naming the model's features (``GET /api/models/<slug>/info`` lists
them) and, optionally, an ``entity_id`` column with your own id for each row. The file is
streamed to the service, never read into memory whole; so are the results. Rows the model
could not take are listed, by line, in the error report (``--errors errors.jsonl``).
Ctrl-C while waiting cancels the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from client import ModelOpsClient, ModelOpsError, _error_from_response

UPLOAD_BLOCK_BYTES = 1024 * 1024
POLL_SECONDS = 1.0
BAR_WIDTH = 40


def submit(client: ModelOpsClient, slug: str, path: Path, **fields: str) -> dict:
    """POST the file as multipart/form-data, streamed from disk; returns the job (202)."""
    boundary = uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in {"model": slug, **fields}.items()
        if value
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while block := handle.read(UPLOAD_BLOCK_BYTES):
                yield block
        yield tail

    request = urllib.request.Request(  # noqa: S310 (the URL is the service's, from the environment)
        client.base_url + "/api/bulk-predictions",
        data=body(),
        method="POST",
        headers={
            "X-API-Key": client.api_key or "",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _error_from_response(exc) from None


def wait(client: ModelOpsClient, job: dict) -> dict:
    """Poll until the job has finished, drawing a progress bar on stderr."""
    while job["status"] in ("pending", "running"):
        time.sleep(POLL_SECONDS)
        job = client.get(job["url"])
        filled = int(BAR_WIDTH * job["progress_percent"] / 100)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {job['progress_percent']:5.1f}% "
            f"{job['rows_done']:,} done, {job['rows_failed']:,} failed ({job['status']})"
        )
        sys.stderr.flush()
    sys.stderr.write("\n")
    return job


def download(client: ModelOpsClient, path: str, out: Path) -> int:
    """Stream a download to ``out``; returns the bytes written."""
    request = urllib.request.Request(client.base_url + path, headers={"X-API-Key": client.api_key or ""})  # noqa: S310
    written = 0
    try:
        with urllib.request.urlopen(request, timeout=600) as response, out.open("wb") as target:  # noqa: S310
            while block := response.read(UPLOAD_BLOCK_BYTES):
                target.write(block)
                written += len(block)
    except urllib.error.HTTPError as exc:
        raise _error_from_response(exc) from None
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description="Score a CSV file with a bulk prediction job.")
    parser.add_argument("model", help="model slug, e.g. churn")
    parser.add_argument("csv", type=Path, help="the input file (header row of feature names)")
    parser.add_argument("--out", type=Path, default=Path("results.csv"), help="where to write the results")
    parser.add_argument("--errors", type=Path, help="where to write the error report (JSON lines)")
    parser.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv", help="results format")
    parser.add_argument("--callback-url", default="", help="called (signed) when the job finishes")
    args = parser.parse_args()
    client = ModelOpsClient()
    if not client.api_key:
        print("Set MODELOPS_API_KEY to an API key with the predictor role.", file=sys.stderr)
        return 2
    job = None
    try:
        job = submit(client, args.model, args.csv, output_format=args.format, callback_url=args.callback_url)
        print(f"job {job['id']}: {job['rows_total']:,} rows in {job['chunks_total']} chunks", file=sys.stderr)
        if job.get("callback_secret"):
            print(f"callback secret (shown once, keep it): {job['callback_secret']}", file=sys.stderr)
        job = wait(client, job)
        if job["rows_done"]:
            size = download(client, job["results_url"], args.out)
            print(f"results: {args.out} ({size:,} bytes)", file=sys.stderr)
        if args.errors and job["rows_failed"]:
            download(client, job["errors_url"], args.errors)
            print(f"error report: {args.errors}", file=sys.stderr)
        seconds = job["timings"]["running_seconds"]
        print(f"{job['status']} in {seconds:.1f} s ({job['timings']['rows_per_second']:,.0f} rows/s)", file=sys.stderr)
        if job["error"]:
            print(job["error"], file=sys.stderr)
        return 0 if job["status"] == "completed" else 1
    except KeyboardInterrupt:
        if job and job["status"] in ("pending", "running"):
            client.delete(job["url"])
            print("\ncancelled", file=sys.stderr)
        return 130
    except ModelOpsError as exc:
        print(f"Error {exc.status_code} {exc.error}: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, indent=2), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
