"""Real processes for integration tests: gunicorn servers and Celery workers on the test database.

They run the service exactly as production does, in separate processes, sharing the database,
the cache and the broker with the test process, so what crosses a process boundary is tested.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib import error, request

from django.conf import settings
from django.db import connection

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database the tests run on (the test database, once created)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "VAR_DIR": str(settings.VAR_DIR)}
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: dict

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class LiveServer:
    url: str
    log_path: Path

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, body: dict | None = None) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        req = request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with request.urlopen(req, timeout=30) as answer:
                return Response(answer.status, dict(answer.headers), json.loads(answer.read() or b"{}"))
        except error.HTTPError as failed:
            return Response(failed.code, dict(failed.headers), json.loads(failed.read() or b"{}"))

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines


@contextlib.contextmanager
def live_server(env: dict[str, str], workers: int = 1) -> Iterator[LiveServer]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", Path(log.name))
    try:
        _wait_until(lambda: server.call("GET", "/api/health").status == 200, process, server.log_path)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str], queues: str = "default,scheduling,predictions,training"
) -> Iterator[subprocess.Popen]:
    log = tempfile.NamedTemporaryFile(prefix="celery-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--queues",
            queues,
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--hostname",
            f"test-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_path = Path(log.name)
    try:
        _wait_until(lambda: "ready" in Path(log.name).read_text(), process, Path(log.name))
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until(condition, process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if condition():
                return
        time.sleep(0.2)
    raise RuntimeError(f"process not ready after {timeout}s:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def celery_beat(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Celery beat with the database scheduler, as Procfile.dev runs it; its log is ``process.log_path``."""
    log = tempfile.NamedTemporaryFile(prefix="beat-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "beat", "--loglevel", "INFO", "--no-enable-remote-control"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_path = Path(log.name)
    try:
        _wait_until(lambda: "beat: Starting" in process.log_path.read_text(), process, process.log_path)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
