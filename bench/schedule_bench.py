"""Scheduled runs benchmark: N schedules firing every minute, on one beat and then on two.

    .venv/bin/python bench/schedule_bench.py                          # 1,000 runs, 10 minutes, 1 beat then 2
    .venv/bin/python bench/schedule_bench.py --minutes 2 --beats 1    # a quick look
    .venv/bin/python bench/schedule_bench.py --minutes 3 --beats 2 --kill-holder-at 60.5   # a failover

Needs PostgreSQL and Redis on 127.0.0.1: each phase uses a fresh database ``modelops_bench_sched``
and Redis databases 4 (broker and results) and 5 (cache), emptied first.

Per phase it creates a scratch ``VAR_DIR``, migrates, trains churn, creates ``--runs`` scheduled
runs with ``* * * * *`` through the service (each scoring a JSON list of ``--rows`` rows), then
starts ``--workers`` Celery workers (``--queues scheduling --concurrency C``) and ``B`` beats,
exactly as the README's production commands do. The first full minute after everything is up
is a warm-up; the next ``--minutes`` minute boundaries are the measured slots. Afterwards it
waits for the workers to finish, stops everything, and reads the database:

- missed: measured (run, slot) pairs without an execution; duplicates: (run, slot) pairs with
  more than one execution (the unique constraint makes this 0 by construction) and executions
  with more prediction records than rows (duplicated work would show there);
- lag: execution start minus slot time, p50 / p99 / max;
- beat: ticks sent per slot, and how long after the slot each beat sent its last tick;
- CPU seconds used by beat, workers, PostgreSQL and Redis over the measured minutes.

Of several beats, one holds the beat lease and sends; the others stand by (scheduling/leases.py).
``--kill-holder-at S`` SIGKILLs the holder S seconds after the first measured slot, to see what
a failover costs: the standby takes over when the lease runs out, and the sweeper re-sends the
ticks that were lost in between.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BIN = Path(PYTHON).parent
DATABASE = "modelops_bench_sched"
BROKER_DB, CACHE_DB = 4, 5
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def run(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def fresh_backends(env: dict[str, str]) -> None:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DATABASE], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DATABASE], check=True)
    for db in (BROKER_DB, CACHE_DB):
        subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True, capture_output=True)
    run([PYTHON, "manage.py", "migrate", "--noinput"], env)
    run([PYTHON, "manage.py", "train_models", "--model", "churn"], env)


def create_runs(env: dict[str, str], runs: int, rows: int) -> None:
    script = f"""
import django; django.setup()
from accounts.services import user_ensure
from predictions.catalog import CATALOG
from scheduling.services import scheduled_run_create
spec = CATALOG["churn"]
rows = spec.generate({rows}, seed=1)[spec.feature_names()].to_dict("records")
owner, _ = user_ensure(username="bench", role="operator")
for i in range({runs}):
    scheduled_run_create(owner=owner, model_slug="churn", cron="* * * * *", name=f"bench {{i}}",
                         parameters={{"source": "rows", "rows": rows}})
"""
    run([PYTHON, "-c", script], env)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_for(text: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{log.name}: no {text!r} after {timeout}s:\n{log.read_text()[-2000:]}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def pids_named(name: str, argument: str = "") -> list[int]:
    """Processes called ``name`` (and with ``argument`` in their command line, if given)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != name:
                continue
            if argument and argument not in (comm.parent / "cmdline").read_text():
                continue
            found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes, plus that of their children that have exited (PostgreSQL's
    backends come and go; the postmaster's ``cutime`` keeps theirs)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICK


def machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def beat_sends(log: Path) -> list[datetime]:
    """When this beat sent each scheduled-run tick, from its JSON log (local time, as logged).

    Beat sends the ticks due together in messages of a few runs each: "sent the due ticks of
    scheduled-run-1 scheduled-run-2 ..." (scheduling/beat.py); one time per tick.
    """
    sends = []
    for line in log.read_text().splitlines():
        if "sent the due ticks of" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        sent = datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
        sends += [sent] * record["message"].count("scheduled-run-")
    return sends


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def analyse(env: dict[str, str], slots: list[datetime], rows: int) -> dict:
    script = f"""
import django, json; django.setup()
from datetime import datetime
from django.db.models import Count
from history.models import PredictionRecord
from scheduling.models import ScheduledRun, ScheduledRunExecution
slots = [datetime.fromisoformat(s) for s in {json.dumps([s.isoformat() for s in slots])}]
executions = ScheduledRunExecution.objects.filter(slot__in=slots, trigger="schedule")
per_pair = executions.values("run_id", "slot").annotate(n=Count("id"))
records = dict(PredictionRecord.objects.filter(scheduled_execution_id__in=executions.values("id"))
               .values_list("scheduled_execution_id").annotate(n=Count("id")))
print(json.dumps({{
    "runs": ScheduledRun.objects.filter(enabled=True).count(),
    "executions": [[e.id, e.status, (e.started_at - e.slot).total_seconds() if e.started_at else None, e.missed_slots]
                   for e in executions.only("id", "status", "started_at", "slot", "missed_slots")],
    "pairs": per_pair.count(),
    "duplicate_pairs": per_pair.filter(n__gt=1).count(),
    "overscored": sum(1 for n in records.values() if n > {rows}),
    "records": sum(records.values()),
}}))
"""
    return json.loads(run([PYTHON, "-c", script], env))


def phase(args: argparse.Namespace, beats: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="modelops-schedbench-"))
    env = {
        **os.environ,
        "VAR_DIR": str(scratch),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{BROKER_DB}",
        "CACHE_URL": f"redis://127.0.0.1:6379/{CACHE_DB}",
        "OMP_NUM_THREADS": "1",
        "LOG_LEVEL": "INFO",
        # Connections kept for the whole phase, so that the CPU of their PostgreSQL backends can be
        # read from /proc at the end (the default, 60 s, replaces them during the measurement).
        "DATABASE_CONN_MAX_AGE": "3600",
    }
    print(f"\n== {args.runs} runs, {beats} beat(s), {args.workers} worker(s) x {args.concurrency}", flush=True)
    fresh_backends(env)
    created = time.monotonic()
    create_runs(env, args.runs, args.rows)
    print(f"created {args.runs} runs in {time.monotonic() - created:.1f}s", flush=True)

    processes: list[tuple[str, subprocess.Popen, Path]] = []
    for index in range(args.workers):
        log = scratch / f"worker-{index}.log"
        command = [str(BIN / "celery"), "-A", "config", "worker", "--queues", "scheduling", "--concurrency",
                   str(args.concurrency), "--hostname", f"bench{index}@%h", "--without-mingle", "--without-gossip",
                   "--loglevel", "INFO"]  # fmt: skip
        processes.append((f"worker-{index}", start(command, env, log), log))
    for index in range(beats):
        log = scratch / f"beat-{index}.log"
        command = [str(BIN / "celery"), "-A", "config", "beat", "--loglevel", "INFO", "--no-enable-remote-control"]
        processes.append((f"beat-{index}", start(command, env, log), log))
    for name, _, log in processes:
        wait_for("ready" if name.startswith("worker") else "beat: Starting", log)

    now = datetime.now(UTC)
    warm_up = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    first = warm_up + timedelta(minutes=1)
    slots = [first + timedelta(minutes=i) for i in range(args.minutes)]
    print(f"warm-up slot {warm_up:%H:%M}, measuring {slots[0]:%H:%M} to {slots[-1]:%H:%M} UTC", flush=True)
    time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds() - 1))

    def groups() -> dict[str, list[int]]:
        found = {name: process_tree(process.pid) for name, process, _ in processes}
        # The backends serving this benchmark's database (others may serve other work on this machine).
        found["postgres"] = pids_named("postgres", DATABASE)
        found["redis"] = pids_named("redis-server")
        return found

    before = groups()
    cpu_before = {name: {pid: cpu_seconds([pid]) for pid in pids} for name, pids in before.items()}
    busy_before, load_before = machine_busy(), os.getloadavg()[0]
    killed = None
    if args.kill_holder_at is not None and beats > 1:
        time.sleep(max(0.0, (first + timedelta(seconds=args.kill_holder_at) - datetime.now(UTC)).total_seconds()))
        killed = kill_lease_holder(processes)
    time.sleep(max(0.0, (slots[-1] + timedelta(seconds=59) - datetime.now(UTC)).total_seconds()))
    cpu = {
        name: sum(cpu_seconds([pid]) - cpu_before.get(name, {}).get(pid, 0.0) for pid in pids)
        for name, pids in groups().items()
    }
    busy_after, load_after = machine_busy(), os.getloadavg()[0]
    busy_cpu_seconds = (busy_after[0] - busy_before[0]) / CLOCK_TICK
    busy = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1])
    cpu["everything else"] = busy_cpu_seconds - sum(cpu.values())

    for name, process, _ in processes:  # beats first, then the workers finish what they hold
        if name.startswith("beat"):
            process.send_signal(signal.SIGTERM)
    time.sleep(5)
    for name, process, _ in processes:
        if name.startswith("worker"):
            process.send_signal(signal.SIGTERM)
    for _, process, _ in processes:
        process.wait(timeout=120)

    result = analyse(env, slots, args.rows)
    lags = [lag for _, status, lag, _ in result["executions"] if lag is not None]
    statuses = Counter(status for _, status, _, _ in result["executions"])
    beat_stats = []
    for name, _, log in processes:
        if not name.startswith("beat"):
            continue
        sends = [s for s in beat_sends(log) if slots[0] <= s < slots[-1] + timedelta(minutes=1)]
        last_per_slot = defaultdict(float)
        for sent in sends:
            slot = sent.replace(second=0, microsecond=0)
            last_per_slot[slot] = max(last_per_slot[slot], (sent - slot).total_seconds())
        beat_stats.append((name, len(sends), list(last_per_slot.values())))
    expected = args.runs * len(slots)
    return {
        "beats": beats,
        "expected": expected,
        "executed": result["pairs"],
        "missed": expected - result["pairs"],
        "duplicate_pairs": result["duplicate_pairs"],
        "overscored": result["overscored"],
        "records": result["records"],
        "statuses": dict(statuses),
        "p50": statistics.median(lags),
        "p99": percentile(lags, 99),
        "max": max(lags),
        "beat": beat_stats,
        "cpu": cpu,
        "busy": busy,
        "load": (load_before, load_after),
        "seconds": len(slots) * 60,
        "killed": killed,
    }


def kill_lease_holder(processes: list[tuple[str, subprocess.Popen, Path]]) -> str:
    """SIGKILL the beat that last logged holding the beat lease; its name and when, for the report."""

    def holds(log: Path) -> bool:
        text = log.read_text()
        return text.rfind("this beat sends the schedule") > text.rfind("standing by")

    for name, process, log in processes:
        if name.startswith("beat") and holds(log):
            process.kill()
            when = datetime.now(UTC)
            print(f"killed {name}, the lease holder, at {when:%H:%M:%S.%f}", flush=True)
            return f"{name} at {when:%H:%M:%S}"
    raise RuntimeError("no beat holds the beat lease")


def report(args: argparse.Namespace, results: list[dict]) -> None:
    print(f"\n{args.runs} runs `* * * * *`, {args.rows}-row JSON input, {args.minutes} measured minutes, "
          f"{args.workers} workers x concurrency {args.concurrency}, PostgreSQL + Redis\n")  # fmt: skip
    print("| beats | slots expected | executed | missed | duplicate slots | lag p50 s | lag p99 s | lag max s "
          "| ticks sent | statuses |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ticks = sum(sent for _, sent, _ in r["beat"])
        duplicates = r["duplicate_pairs"] + r["overscored"]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        print(f"| {r['beats']} | {r['expected']:,} | {r['executed']:,} | {r['missed']} | {duplicates} "
              f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {ticks:,} | {statuses} |")  # fmt: skip
    print("\nBeat: seconds from the slot to the beat's last tick of that slot (median / max over the minutes)\n")
    for r in results:
        for name, sent, spreads in r["beat"]:
            if spreads:
                print(f"- {r['beats']} beat(s), {name}: {sent:,} ticks, last tick after "
                      f"{statistics.median(spreads):.2f} s / {max(spreads):.2f} s")  # fmt: skip
    for r in results:
        if r["killed"]:
            print(f"\nFailover: killed the lease holder, {r['killed']} UTC.")
    print("\nCPU seconds over the measured minutes (machine busy %)\n")
    for r in results:
        parts = ", ".join(f"{name} {seconds:.0f}" for name, seconds in sorted(r["cpu"].items()))
        print(
            f"- {r['beats']} beat(s): {parts}; machine {r['busy'] * 100:.0f} % busy of {os.cpu_count()} cores, "
            f"load average {r['load'][0]:.1f} before and {r['load'][1]:.1f} after"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=10, help="Measured minutes (slots) per phase.")
    parser.add_argument("--beats", type=int, nargs="+", default=[1, 2], help="Beat processes, one phase each.")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (each with its pool).")
    parser.add_argument("--concurrency", type=int, default=2, help="Pool processes per worker.")
    parser.add_argument("--rows", type=int, default=3, help="Rows in each run's JSON input.")
    parser.add_argument(
        "--kill-holder-at", type=float, help="SIGKILL the lease holder this many seconds after the first slot."
    )
    args = parser.parse_args()
    results = [phase(args, beats) for beats in args.beats]
    report(args, results)


if __name__ == "__main__":
    main()
