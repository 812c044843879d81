"""Serving processes take their start-up objects out of the garbage collector's way (config/gc.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.live import ROOT, service_env

PROBE = "import gc, json, config.wsgi; print(json.dumps(gc.get_freeze_count()))"


def test_a_web_process_freezes_its_start_up_objects(db):
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    frozen = json.loads(result.stdout.strip().splitlines()[-1])
    assert frozen > 100_000  # Django, pandas and scikit-learn, never walked again
