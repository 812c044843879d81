"""Scheduled runs from Python: create a schedule, list it, run it now and wait for the result.

Uses the standard-library client in examples/client.py. With an operator or admin key:

    MODELOPS_API_KEY=<key> python examples/scheduling_client.py            # keeps the run
    MODELOPS_API_KEY=<key> python examples/scheduling_client.py --delete   # removes it at the end
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import ModelOpsClient, ModelOpsError

FINISHED = {"succeeded", "failed", "skipped"}


def create_schedule(client: ModelOpsClient) -> dict[str, Any]:
    """Score 500 synthetic churn rows every weekday at 07:15, New York time.

    ``parameters`` could also be ``{"source": "rows", "rows": [{...}, ...]}`` (your own rows,
    up to 10,000) or ``{"source": "dataset", "dataset_id": 12}`` (an uploaded dataset).
    """
    return client.post(
        "/api/scheduled",
        {
            "name": "Weekday churn scores",
            "model_name": "churn",
            "schedule": "15 7 * * mon-fri",
            "timezone": "America/New_York",
            "parameters": {"source": "generator", "count": 500, "seed": None, "drift": 0.0},
            "misfire_policy": "skip",
        },
    )


def run_now_and_wait(client: ModelOpsClient, run_id: int, timeout: float = 120) -> dict[str, Any]:
    execution = client.post(f"/api/scheduled/{run_id}/trigger")
    print(f"queued execution {execution['id']} ({execution['status']})")
    deadline = time.monotonic() + timeout
    while execution["status"] not in FINISHED and time.monotonic() < deadline:
        time.sleep(1)
        execution = client.get(f"/api/scheduled/{run_id}/executions/{execution['id']}")
        print(f"  {execution['status']}, {execution['rows_scored']} rows scored")
    return execution


def main() -> int:
    client = ModelOpsClient()
    if not client.api_key:
        print("Set MODELOPS_API_KEY to an operator or admin API key (make run prints one).", file=sys.stderr)
        return 2
    try:
        run = create_schedule(client)
        print(f"created run {run['id']}: {run['schedule']} in {run['timezone']}; next fire times:")
        for fire in run["next_runs"]:
            print(f"  {fire['local']}  ({fire['utc']})")

        try:
            client.post("/api/scheduled", {"model_name": "churn", "schedule": "61 * * * *", "parameters": {}})
        except ModelOpsError as refused:
            print(f"an invalid schedule is refused: {refused.status_code} {json.dumps(refused.details)}")

        listing = client.get("/api/scheduled?model_name=churn&limit=5")
        print(f"{listing['count']} churn run(s); the newest: {[r['name'] for r in listing['results']]}")

        execution = run_now_and_wait(client, run["id"])
        print(json.dumps(execution, indent=2))
        print(f"its predictions are in history with source 'scheduled' and execution id {execution['id']}")

        paused = client.request("PATCH", f"/api/scheduled/{run['id']}", body={"enabled": False})
        print(f"paused: enabled={paused['enabled']}, next_run_at={paused['next_run_at']}")
        if "--delete" in sys.argv:
            client.delete(f"/api/scheduled/{run['id']}")
            print("deleted")
    except ModelOpsError as exc:
        print(f"Error {exc.status_code} {exc.error}: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, indent=2), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
