"""Adaptive sweeps on the real local Ray pool: the in-cluster controller stops losing trials, runs
Bayesian search to max_total_trials, resumes after it is killed or the CLI is interrupted; metrics
from the Python helper and from a shell script; --plot; the example jobs/lr_search.yaml end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.model import TaskState

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

STEPS_SH = """#!/bin/sh
# report quality $1 at steps 1..8, half a second apart
for step in 1 2 3 4 5 6 7 8; do
  echo "{\\"step\\": $step, \\"acc\\": $1}" >> "$ORCH_METRICS_FILE"
  sleep 0.5
done
"""
BOWL_PY = """import sys, time
from orchestrator import report
x = float(sys.argv[1])
time.sleep(float(sys.argv[2]))
report(step=1, score=round(-(x - 0.3) ** 2, 6))
"""


def orch(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def cli_env(pool_home: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}


def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir(exist_ok=True)
    (folder / "steps.sh").write_text(STEPS_SH)
    (folder / "bowl.py").write_text(BOWL_PY)
    return folder


def write_spec(tmp_path: Path, text: str) -> Path:
    workdir(tmp_path)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(text)
    return spec


def states(job_id: str) -> dict[str, TaskState]:
    from orchestrator.backend import load_backend
    from orchestrator.model import JobRef

    return {task.id: task.state for task in load_backend("ray").list_tasks(JobRef("testpool", job_id))}


def test_early_termination_stops_losing_trials_on_the_cluster(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = cli_env(pool_home)
    spec = write_spec(tmp_path, """id: early
pool: testpool
workdir: code
tasks:
  - id: trial
    command: sh steps.sh {{quality}}
    search_space: {quality: {choice: [0.9, 0.2, 0.85, 0.1]}}
    objective: {metric: acc, goal: maximize}
    limits: {max_concurrent_trials: 2}
    early_termination: {policy: bandit, slack_amount: 0.2, delay_evaluation: 2}
""")
    run = orch(env, "--config-dir", str(tmp_path), "sweep", str(spec), "--tail")
    assert run.returncode == 0, run.stderr
    assert states("early") == {"trial-00000": TaskState.SUCCEEDED, "trial-00001": TaskState.STOPPED,
                               "trial-00002": TaskState.SUCCEEDED, "trial-00003": TaskState.STOPPED}
    for stopped in ("trial-00001", "trial-00003"):
        metrics = orch(env, "logs", "early", stopped, "--file", "metrics").stdout.splitlines()
        assert 2 <= len(metrics) < 8, metrics
    status = orch(env, "sweep", "status", "early")
    assert "4/4" in status.stdout and "2 stopped" in status.stdout and "2 succeeded" in status.stdout
    rows = json.loads(orch(env, "sweep", "results", "early", "-o", "json").stdout)
    assert [(r["trial"], r["state"]) for r in rows][:2] == [("trial-00000", "succeeded"), ("trial-00002", "succeeded")]
    assert {r["state"] for r in rows[2:]} == {"stopped"}


BAYES = """id: ID
pool: testpool
workdir: code
tasks:
  - id: trial
    command: python bowl.py {{x}} SLEEP
    search_space: {x: {uniform: [0, 1]}}
    sampling: bayesian
    seed: 5
    objective: {metric: score, goal: maximize}
    limits: {max_total_trials: TOTAL, max_concurrent_trials: 2}
"""


def test_bayesian_sweep_runs_max_total_trials_with_the_python_helper(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = cli_env(pool_home)
    spec = write_spec(tmp_path, BAYES.replace("ID", "bayes").replace("SLEEP", "0").replace("TOTAL", "6"))
    run = orch(env, "--config-dir", str(tmp_path), "sweep", str(spec), "--tail")
    assert run.returncode == 0, run.stderr
    assert "controller runs in the cluster" in run.stderr
    assert states("bayes") == {f"trial-{i:05d}": TaskState.SUCCEEDED for i in range(6)}
    rows = json.loads(orch(env, "sweep", "results", "bayes", "-o", "json").stdout)
    scores = [r["score"] for r in rows]
    assert None not in scores and scores == sorted(scores, reverse=True)
    assert rows[0]["score"] == pytest.approx(-((rows[0]["param.x"] - 0.3) ** 2), abs=1e-5)
    plot = tmp_path / "bayes.png"
    drawn = orch(env, "sweep", "results", "bayes", "--plot", str(plot), "-o", "csv")
    assert drawn.returncode == 0, drawn.stderr
    assert plot.read_bytes().startswith(b"\x89PNG") and drawn.stdout.startswith("rank,trial,state,score")
    assert wait_for_controller_exit("bayes")


def wait_for_controller_exit(job_id: str, seconds: float = 20) -> bool:
    from orchestrator.backends.ray import sweep_actor

    deadline = time.monotonic() + seconds
    while sweep_actor.find(job_id) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_killed_controller_resumes_without_duplicates(pool_home: dict[str, str], tmp_path: Path) -> None:
    import ray

    from orchestrator.backends.ray import sweep_actor

    env = cli_env(pool_home)
    spec = write_spec(tmp_path, BAYES.replace("ID", "killed").replace("SLEEP", "1").replace("TOTAL", "5"))
    assert orch(env, "--config-dir", str(tmp_path), "sweep", str(spec)).returncode == 0
    deadline = time.monotonic() + 60
    while not any(state.is_terminal() for state in states("killed").values()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ray.kill(sweep_actor.find("killed"), no_restart=True)
    before = states("killed")
    assert 2 <= len(before) < 5
    resumed = orch(env, "--config-dir", str(tmp_path), "sweep", str(spec), "--resume", "--tail")
    assert resumed.returncode == 0, resumed.stderr
    assert states("killed") == {f"trial-{i:05d}": TaskState.SUCCEEDED for i in range(5)}
    rows = json.loads(orch(env, "sweep", "results", "killed", "-o", "json").stdout)
    assert len({r["param.x"] for r in rows}) == 5, "a restarted search proposes new points"


def test_interrupted_submission_resumes_to_exactly_the_full_sweep(pool_home: dict[str, str], tmp_path: Path) -> None:
    from orchestrator.spec.loader import load_job
    from tests.support import jobs

    env = cli_env(pool_home)
    spec = write_spec(tmp_path, """id: partial
pool: testpool
workdir: null
tasks:
  - id: trial
    command: |-
      echo '{"step": 1, "acc": {{x}}}' >> "$ORCH_METRICS_FILE"
    search_space: {x: {uniform: [0, 1]}}
    sampling: random
    objective: {metric: acc, goal: maximize}
    limits: {max_total_trials: 8, timeout: 10m}
""")
    jobs.submit_first("testpool", load_job(spec), 3)
    resumed = orch(env, "--config-dir", str(tmp_path), "sweep", str(spec), "--resume", "--tail")
    assert resumed.returncode == 0, resumed.stderr
    assert "5 trial(s) added, 3 already present" in resumed.stderr
    assert states("partial") == {f"trial-{i:05d}": TaskState.SUCCEEDED for i in range(8)}
    rows = json.loads(orch(env, "sweep", "results", "partial", "-o", "json").stdout)
    assert [r["acc"] for r in rows] == sorted((r["param.x"] for r in rows), reverse=True)


def test_example_lr_search_end_to_end(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = cli_env(pool_home)
    example = (REPO / "jobs" / "lr_search.yaml").read_text()
    assert "\npool: local\n" in example
    spec = tmp_path / "lr_search.yaml"
    spec.write_text(example.replace("\npool: local\n", "\npool: testpool\n"))
    run = orch(env, "--config-dir", str(REPO), "sweep", str(spec), "--tail", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(orch(env, "sweep", "results", "lr-search", "-o", "json").stdout)
    assert len(rows) == 12
    accuracies = [r["val_accuracy"] for r in rows if r["val_accuracy"] is not None]
    assert accuracies == sorted(accuracies, reverse=True) and len(accuracies) == 12
    assert rows[0]["state"] == "succeeded" and rows[0]["val_accuracy"] >= 0.9
    assert max(accuracies) - min(accuracies) >= 0.3
    assert {r["state"] for r in rows} <= {"succeeded", "stopped"}
