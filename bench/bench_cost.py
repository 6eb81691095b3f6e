"""The cost of idle on a local Ray pool: how soon an idle pool stops itself, whether its ledger
agrees with node time x price measured independently, and how long a stopped pool takes to come back.

Run: python bench/bench_cost.py [--idle-timeout 2m] [--rounds N]   (own ORCH_HOME and pool; ~4 min a round)

Each round: ``orch pool create`` (2 nodes x 1 CPU, ``idle_timeout``, a price per node hour), a job
of 4 tasks of 5 s (``orch jobs add --tail``), a one-task job on the running pool (the warm path).
Then no orch process runs: this script only watches the pool's processes (psutil, by the marks in
the pool record) until every one is gone. Figures:

- minutes from the last task's end (the journal's times) to the last process gone; the target is
  ``idle_timeout`` + one check interval (0.5 s) + the stop itself, and both parts apart (the
  manager's decision is when its stopper started: the first line of ``autostop.log``);
- the ledger's total (``orch cost -o json``) against node time x price computed here, from each
  raylet's process start time (its mark) to the moment this script saw it gone (polled every
  0.1 s); the target is agreement within 1 %;
- ``orch jobs add --tail`` of a one-task job on the stopped pool (it starts the pool again, then
  runs the task), against the same on the running pool; the first job's tasks are checked to be
  there afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.record import write_section  # noqa: E402

POOL = "bench-cost"
PRICE = 2.0  # USD per node hour


def orch(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"orch {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def timed(*args: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    orch(*args, env=env)
    return time.perf_counter() - started


def write(folder: Path, name: str, data: dict[str, object]) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(data))
    return str(path)


def last_end(job_ids: list[str], env: dict[str, str]) -> float:
    ends = []
    for job_id in job_ids:
        shown = json.loads(orch("jobs", "show", job_id, "-o", "json", env=env))
        assert all(task["state"] == "succeeded" for task in shown["tasks"]), shown
        ends += [task["ended_at"] for task in shown["tasks"]]
    return max(ends)


def watch_until_gone(env: dict[str, str]) -> tuple[float, list[float]]:
    """When the pool's last process was seen gone, and each raylet's start (from the record's marks)."""
    os.environ["ORCH_HOME"] = env["ORCH_HOME"]
    from orchestrator.backends.ray import local_cluster
    from orchestrator.backends.ray.cluster_record import ClusterRecord
    from orchestrator.records import pool_records

    marks = ClusterRecord.of(pool_records.require(POOL)).node_marks()
    raylets = [mark.start_time for node in marks for mark in node if mark.exe and mark.exe.endswith("/raylet")]
    assert len(raylets) == 2, marks
    while local_cluster.cluster_processes(marks):
        time.sleep(0.1)
    return time.time(), raylets


def stopper_started(env: dict[str, str]) -> float:
    """When the pool manager decided to stop (its stopper's first log line, ``autostop.log``)."""
    log = Path(env["ORCH_HOME"]) / "state" / POOL / "autostop.log"
    line = next(line for line in log.read_text().splitlines() if "stopper started at" in line)
    return float(line.rsplit(" ", 1)[1])


def one_round(folder: Path, env: dict[str, str], idle: str) -> dict[str, float]:
    pool = write(folder, "pool", {"id": POOL, "nodes": 2, "cpus_per_node": 1, "idle_timeout": idle,
                                  "price_per_node_hour": PRICE})
    work = write(folder, "work", {"id": "work", "pool": POOL, "workdir": None,
                                  "tasks": [{"id": f"t{i}", "command": "sleep 5"} for i in range(4)]})
    create = timed("pool", "create", pool, "-q", env=env)
    try:
        orch("jobs", "add", work, "--tail", env=env)
        warm = timed("jobs", "add", write(folder, "warm", {"id": "warm", "pool": POOL, "workdir": None,
                                                           "tasks": [{"id": "t", "command": "true"}]}), "--tail", env=env)
        ended = last_end(["work", "warm"], env)
        gone, raylets = watch_until_gone(env)
        decided = stopper_started(env)
        shown = orch("pool", "show", POOL, env=env)
        assert f"pool {POOL}: stopped" in shown, shown
        ledger = json.loads(orch("cost", "--pool", POOL, "-o", "json", env=env))["pools"][0]
        independent = sum(gone - start for start in raylets) / 3600 * PRICE
        cold = timed("jobs", "add", write(folder, "cold", {"id": "cold", "pool": POOL, "workdir": None,
                                                           "tasks": [{"id": "t", "command": "true"}]}), "--tail", env=env)
        kept = json.loads(orch("jobs", "show", "work", "-o", "json", env=env))["job"]["task_counts"]
        assert kept == {"succeeded": 4}, kept
    finally:
        orch("pool", "delete", POOL, "--force", "-y", "-q", env=env)
    return {"create": create, "to_stopped": (gone - ended) / 60, "to_decision": (decided - ended) / 60,
            "stop": gone - decided, "ledger": ledger["usd"], "independent": independent,
            "error": abs(ledger["usd"] - independent) / independent, "warm": warm, "cold": cold,
            "idle_usd": ledger["idle_usd"]}


def spread(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"median {statistics.median(values):{fmt}} (range {min(values):{fmt}}–{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-timeout", default="2m")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from orchestrator.duration import parse_duration

    idle_minutes = parse_duration(args.idle_timeout) / 60
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="orch-bench-cost-") as folder:
            env = {**os.environ, "ORCH_HOME": str(Path(folder) / "home"), "PYTHONPATH": str(REPO)}
            rounds.append(one_round(Path(folder), env, args.idle_timeout))
            print(json.dumps(rounds[-1]), flush=True)
    figure = {key: [r[key] for r in rounds] for key in rounds[0]}
    body = f"""A 2-node x 1-CPU local pool with `idle_timeout: {args.idle_timeout}` and `price_per_node_hour: {PRICE}`,
a job of 4 x `sleep 5` and a one-task job, then no orch process; {len(rounds)} round(s).

| Figure | Measured | Target |
|---|---|---|
| Last task's end to every pool process gone | {spread(figure['to_stopped'], '.2f')} min | {idle_minutes:.2f} min + 0.5 s check + the stop |
| of which: last task's end to the manager's decision (stopper started) | {spread(figure['to_decision'], '.3f')} min | {idle_minutes:.2f} min + 0.5 s check |
| of which: the stop (stopper started to processes gone) | {spread(figure['stop'], '.1f')} s | |
| Ledger total (`orch cost`) | {spread(figure['ledger'], '.5f')} USD (idle {spread(figure['idle_usd'], '.5f')} USD) | |
| Node time x price, from raylet start times to processes gone | {spread(figure['independent'], '.5f')} USD | |
| Disagreement | {spread([100 * e for e in figure['error']], '.3f')} % | within 1 % |
| `orch jobs add --tail`, one task, running pool | {spread(figure['warm'], '.1f')} s | |
| `orch jobs add --tail`, one task, stopped pool (starts it again) | {spread(figure['cold'], '.1f')} s | |
| `orch pool create` (for comparison) | {spread(figure['create'], '.1f')} s | |

The stop is done by a detached stopper the pool manager starts (`backends/ray/autostop.py`): SIGTERM to
the pool's marked processes, SIGKILL after 3 s. A stopped pool's jobs and history come back with it
(the manager replays its journal); the first job's 4 tasks are listed succeeded after the restart.
"""
    write_section("Cost control: idle Ray pools stop themselves (issue 11)",
                  f"python bench/bench_cost.py --idle-timeout {args.idle_timeout} --rounds {args.rounds}", body)
    print(body)


if __name__ == "__main__":
    main()
