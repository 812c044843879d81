"""Where a single prediction's time goes, in-process (no HTTP server, no load generator).

    .venv/bin/python bench/request_breakdown.py            # against the configured database
    DATABASE_URL=postgres://... CACHE_URL=redis://... .venv/bin/python bench/request_breakdown.py

Needs trained models (`manage.py train_models` or `make run` once). Creates a 'bench-breakdown'
user and key. Prints the median of 300 calls of each step, in milliseconds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("RATE_LIMIT_PER_IP", "100000000/min")

import django

django.setup()

from django.test import Client  # noqa: E402

from accounts.selectors import api_key_from_raw  # noqa: E402
from accounts.services import api_key_create, user_ensure  # noqa: E402
from config.cache import cache_increment  # noqa: E402
from predictions.catalog import CATALOG  # noqa: E402
from predictions.services import Caller, predictions_make  # noqa: E402
from predictions.serving import registry  # noqa: E402


def median_ms(action, calls: int = 300) -> float:
    for _ in range(30):
        action()
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    user, _ = user_ensure(username="bench-breakdown", role="predictor")
    key = api_key_create(user=user, name="breakdown", role="predictor", tier="premium")[1]
    client, spec = Client(), CATALOG["churn"]
    row = spec.example_row()
    body = json.dumps({"features": row})
    artifact = registry.get("churn").artifact
    steps = {
        "whole POST /api/churn": lambda: client.post(
            "/api/churn", body, content_type="application/json", HTTP_X_API_KEY=key
        ),
        "GET /api/health (middleware + DRF floor)": lambda: client.get("/api/health"),
        "API-key lookup": lambda: api_key_from_raw(key),
        "prediction service (validate, predict, record)": lambda: predictions_make(
            slug="churn", rows=[row], entity_ids=[""], caller=Caller("api", "bench")
        ),
        "model predict on a one-row frame": lambda: spec.predict(artifact, spec.feature_frame([row])),
        "one shared counter increment": lambda: cache_increment("bench:breakdown", timeout=60),
    }
    print("| step | ms |\n|---|---:|")
    for name, action in steps.items():
        print(f"| {name} | {median_ms(action):.2f} |")


if __name__ == "__main__":
    main()
