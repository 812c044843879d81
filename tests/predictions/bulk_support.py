"""What the bulk job tests share: input files, an in-process job runner, downloads, a receiver."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.bulk import bulk_chunk_run, bulk_job_start
from predictions.catalog import CATALOG
from predictions.models import BulkChunk

BULK_URL = "/api/bulk-predictions"


@pytest.fixture
def bulk_media(settings, tmp_path):
    """Each test keeps its job files in its own MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def churn_rows(count: int, *, seed: int = 7) -> pd.DataFrame:
    """Generated churn clients (features only) with an entity id each."""
    spec = CATALOG["churn"]
    frame = spec.generate(count, seed=seed)[spec.feature_names()]
    frame.insert(0, "entity_id", [f"client-{seed}-{i}" for i in range(count)])
    return frame


def csv_upload(frame: pd.DataFrame, name: str = "clients.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, frame.to_csv(index=False).encode(), content_type="text/csv")


def parquet_upload(frame: pd.DataFrame, name: str = "clients.parquet") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/octet-stream")


def submit(client, caller, **fields):
    """POST a multipart submission (a ``file``) or a JSON one (``rows`` or ``dataset``)."""
    if "file" in fields:
        return client.post(BULK_URL, fields, format="multipart", **caller.headers)
    return client.post(BULK_URL, fields, format="json", **caller.headers)


def run_in_process(job_id) -> list[str]:
    """Start the job and run each chunk once, as a worker would (no broker involved)."""
    bulk_job_start(job_id=job_id)
    indexes = BulkChunk.objects.filter(job_id=job_id).order_by("index").values_list("index", flat=True)
    return [bulk_chunk_run(job_id=job_id, index=index).status for index in indexes]


def download(client, caller, job_id, what: str = "results"):
    response = client.get(f"{BULK_URL}/{job_id}/{what}", **caller.headers)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def jsonl(body: bytes) -> list[dict]:
    return [orjson.loads(line) for line in body.splitlines() if line]


def batch_predictions(client, caller, frame: pd.DataFrame) -> list[dict]:
    """The synchronous /batch answer for the same rows, the reference bulk results must equal."""
    features = frame.drop(columns=["entity_id"])
    rows = [{"features": json.loads(row.to_json()), "entity_id": entity} for (_, row), entity in
            zip(features.iterrows(), frame["entity_id"], strict=True)]  # fmt: skip
    response = client.post("/api/churn/batch", {"rows": rows}, format="json", **caller.headers)
    assert response.status_code == 200, response.content
    return response.json()["results"]


@dataclass
class Receiver:
    """A callback receiver on 127.0.0.1 that keeps what it was sent and answers ``status``."""

    url: str
    received: list[dict] = field(default_factory=list)
    status: int = 200


@contextmanager
def callback_receiver(status: int = 200) -> Iterator[Receiver]:
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"headers": dict(self.headers), "body": body})
            self.send_response(receiver.status)
            self.end_headers()
            self.wfile.write(b"thanks")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_port}/hooks/bulk", calls, status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
