#!/usr/bin/env bash
# Scheduled runs with curl: create a schedule, list it, run it now, follow the execution, change it.
#
#   export MODELOPS_URL=http://127.0.0.1:8000
#   export MODELOPS_API_KEY=<an operator or admin key; make run prints one>
#   bash examples/scheduling_curl.sh            # add --delete to remove the run at the end
#
# Needs curl and python3 (to read ids out of the JSON answers).
set -euo pipefail

URL=${MODELOPS_URL:-http://127.0.0.1:8000}
: "${MODELOPS_API_KEY:?Set MODELOPS_API_KEY to an operator or admin API key}"
auth=(-H "X-API-Key: $MODELOPS_API_KEY")
json=(-H "Content-Type: application/json")

field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

echo "== Create: score 500 synthetic churn rows every day at 02:30, Paris time"
# parameters is the input of every execution, one of:
#   {"source": "generator", "count": 500, "seed": null, "drift": 0.0}   synthetic rows (demos)
#   {"source": "rows", "rows": [{...features...}, ...]}               up to 10,000 rows of features
#   {"source": "dataset", "dataset_id": 12}                           a dataset from POST /api/datasets
created=$(curl -sS --fail-with-body -X POST "$URL/api/scheduled" "${auth[@]}" "${json[@]}" -d '{
  "name": "Nightly churn scores",
  "model_name": "churn",
  "schedule": "30 2 * * *",
  "timezone": "Europe/Paris",
  "parameters": {"source": "generator", "count": 500, "seed": null, "drift": 0.0},
  "misfire_policy": "run_once",
  "enabled": true
}')
echo "$created" | python3 -m json.tool
run_id=$(echo "$created" | field '["id"]')
echo "Next fire times (Paris / UTC):"
echo "$created" | python3 -c 'import json, sys; [print(" ", t["local"], "/", t["utc"]) for t in json.load(sys.stdin)["next_runs"]]'

echo "== An invalid schedule is refused (400), naming the field and why"
curl -sS -X POST "$URL/api/scheduled" "${auth[@]}" "${json[@]}" \
     -d '{"model_name": "churn", "schedule": "0 0 30 2 *", "parameters": {"source": "generator", "count": 1}}' \
     | python3 -m json.tool

echo "== List your runs (filters: model_name, enabled; pagination: limit, offset)"
curl -sS "$URL/api/scheduled?model_name=churn&enabled=true&limit=10" "${auth[@]}" | python3 -m json.tool

echo "== Run it now: the answer is the queued execution"
execution=$(curl -sS --fail-with-body -X POST "$URL/api/scheduled/$run_id/trigger" "${auth[@]}")
echo "$execution" | python3 -m json.tool
execution_id=$(echo "$execution" | field '["id"]')

echo "== Follow the execution until it finishes"
for _ in $(seq 1 60); do
    state=$(curl -sS "$URL/api/scheduled/$run_id/executions/$execution_id" "${auth[@]}")
    status=$(echo "$state" | field '["status"]')
    echo "  $status"
    case "$status" in succeeded | failed | skipped) break ;; esac
    sleep 1
done
echo "$state" | python3 -m json.tool

echo "== Executions of the run, newest first (filters: status, trigger)"
curl -sS "$URL/api/scheduled/$run_id/executions?limit=5" "${auth[@]}" | python3 -m json.tool

echo "== Change the schedule (from the next slot on) and pause it"
curl -sS -X PATCH "$URL/api/scheduled/$run_id" "${auth[@]}" "${json[@]}" \
     -d '{"schedule": "0 6 * * mon-fri", "enabled": false}' | python3 -m json.tool

if [[ "${1:-}" == "--delete" ]]; then
    echo "== Delete it (its predictions stay in history)"
    curl -sS -o /dev/null -w "%{http_code}\n" -X DELETE "$URL/api/scheduled/$run_id" "${auth[@]}"
fi
