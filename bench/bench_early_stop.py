"""Early termination figures on a local Ray pool: report → trial killed latency, and the epochs the
policy saves on the quickstart sweep compared with running every trial to the end.

Run: python bench/bench_early_stop.py   (starts and deletes its own local Ray pools)

1. Latency: 4 trials run at once; each reports its score every 0.5 s for 20 steps, one of them a
   losing score. Bandit (slack 0.1, delay 2) condemns the loser at its step-2 report; the figure is
   the time from that report (the ``time`` the metrics line carries) to the task's end as the
   backend records it, over several rounds (range and median).
2. Savings: ``jobs/lr_search.yaml`` as shipped (median stopping) against the same sweep with
   ``early_termination`` removed (same seed, same trials): epochs run (steps reported), and wall
   time from ``orch sweep`` to the last trial's end, as the user runs it.
"""
from __future__ import annotations

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

ROUNDS = 5
LOSER = "trial-00000"
TRIAL = ("python -c \"import os, time; from orchestrator import report\n"
         "for step in range(1, 21):\n    report(step=step, score=float(os.environ['ORCH_PARAM_SCORE'])); "
         "time.sleep(0.5)\"")


def orch(*args: str, env: dict[str, str], check: bool = True) -> str:
    done = subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=900)
    if check and done.returncode != 0:
        raise RuntimeError(f"orch {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


def latency_round(index: int, folder: Path, env: dict[str, str]) -> float:
    job_id = f"latency-{index}"
    spec = folder / f"{job_id}.yaml"
    spec.write_text(json.dumps({"id": job_id, "pool": "bench-stop", "workdir": None, "tasks": [{
        "id": "trial", "command": TRIAL, "resources": {"cpus": 0.5},
        "search_space": {"score": {"choice": [0.1, 0.9, 0.91, 0.92]}},
        "objective": {"metric": "score", "goal": "maximize"},
        "early_termination": {"policy": "bandit", "slack_amount": 0.1, "evaluation_interval": 1,
                              "delay_evaluation": 2}}]}))
    orch("sweep", str(spec), "--tail", env=env, check=False)
    shown = json.loads(orch("jobs", "show", job_id, "-o", "json", env=env))
    loser = next(task for task in shown["tasks"] if task["id"] == LOSER)
    assert loser["state"] == "stopped", loser
    metrics = [json.loads(line) for line in orch("logs", job_id, LOSER, "--file", "metrics", env=env).splitlines()]
    condemned = next(record["time"] for record in metrics if record["step"] == 2)
    return float(loser["ended_at"]) - float(condemned)


def sweep_epochs(job_file: Path, job_id: str, env: dict[str, str]) -> tuple[int, float]:
    started = time.monotonic()
    orch("--config-dir", str(REPO), "sweep", str(job_file), "--tail", env=env, check=False)
    wall = time.monotonic() - started
    shown = json.loads(orch("jobs", "show", job_id, "-o", "json", env=env))
    epochs = 0
    for task in shown["tasks"]:
        lines = orch("logs", job_id, task["id"], "--file", "metrics", env=env, check=False).splitlines()
        epochs += len([line for line in lines if line.strip()])
    return epochs, wall


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="orch-bench-stop-"))
    env = {**os.environ, "ORCH_HOME": str(folder / "home")}
    pool = folder / "pool.yaml"
    pool.write_text("id: bench-stop\nnodes: 2\ncpus_per_node: 1\nmax_tasks_per_node: 2\n")
    orch("pool", "create", str(pool), "-q", env=env)
    try:
        latencies = [latency_round(index, folder, env) for index in range(ROUNDS)]
    finally:
        orch("pool", "delete", "bench-stop", "-y", "--force", "-q", env=env, check=False)
    shipped = (REPO / "jobs" / "lr_search.yaml").read_text()
    assert "early_termination:" in shipped
    plain = folder / "lr_search_plain.yaml"
    plain.write_text(shipped.split("    early_termination:")[0].replace("id: lr-search", "id: lr-search-plain"))
    orch("pool", "create", str(REPO / "templates" / "pool.yaml"), "-q", env=env)
    try:
        stopped_epochs, stopped_wall = sweep_epochs(REPO / "jobs" / "lr_search.yaml", "lr-search", env)
        plain_epochs, plain_wall = sweep_epochs(plain, "lr-search-plain", env)
    finally:
        orch("pool", "delete", "local", "-y", "--force", "-q", env=env, check=False)
    body = f"""
| figure | orch | baseline | target |
|---|---|---|---|
| report that condemns a trial → trial ended (bandit, local Ray pool, {ROUNDS} rounds) | median {statistics.median(latencies):.2f} s (range {min(latencies):.2f}–{max(latencies):.2f} s) | | ≤ 1 s |
| quickstart sweep (`jobs/lr_search.yaml`, median stopping): epochs run | {stopped_epochs} | {plain_epochs} without early termination | |
| same: `orch sweep --tail` → last trial done | {stopped_wall:.1f} s | {plain_wall:.1f} s without early termination | |

The quickstart's epochs are short (digits, about 0.1 s each after a 2–3 s start-up), so a stop
saves a few epochs per condemned trial rather than minutes; the latency row is what holds for long
epochs: a trial is killed within about one controller pass (0.25 s) of the report that condemns it.
"""
    write_section("Early termination (issue 9)", "python bench/bench_early_stop.py", body)
    print(body)


if __name__ == "__main__":
    main()
