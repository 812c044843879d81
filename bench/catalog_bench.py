"""Catalog benchmark: generator speed and training time per model, no Django, no server.

    .venv/bin/python bench/catalog_bench.py

For each model: seconds to generate 1,000,000 rows, and seconds to fit on its default
training rows (what `make run` and `manage.py train_models` do on first start).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictions.catalog import CATALOG


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    print("| model | generate 1,000,000 rows (s) | fit on default rows (s) | default rows |")
    print("|---|---:|---:|---:|")
    for slug, spec in CATALOG.items():
        generate = seconds(lambda spec=spec: spec.generate(1_000_000, seed=1))
        frame = spec.generate(spec.default_training_rows, seed=2)
        fit = seconds(lambda spec=spec, frame=frame: spec.fit(frame, seed=2))
        print(f"| {slug} | {generate:.2f} | {fit:.2f} | {spec.default_training_rows:,} |")


if __name__ == "__main__":
    main()
