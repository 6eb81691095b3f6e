"""Sweeps end to end on the real local Ray pool: expansion, quoting, metrics, ranking, resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.model import JobRef

pytestmark = pytest.mark.slow

SWEEP = """id: ID
pool: testpool
workdir: null
tasks:
  - id: trial
    command: |-
      echo '{"score": {{x}}, "step": 1}' >> "$ORCH_METRICS_FILE"; printf '%s\\n' {{label}}
    search_space:
      x: {choice: [1, 3, 2]}
      label: {choice: ["x; echo INJECTED", "$(id)"]}
"""


def orch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, capture_output=True,
                          text=True, timeout=180)


def test_grid_sweep_runs_ranks_and_resumes(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP.replace("ID", "grid"))
    dry = orch(env, "sweep", str(spec), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    trials = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [t["id"] for t in trials] == [f"trial-{i:05d}" for i in range(6)]
    run = orch(env, "sweep", str(spec), "--tail")
    assert run.returncode == 0, run.stderr
    assert "x; echo INJECTED" in run.stdout and "$(id)" in run.stdout
    assert "\nINJECTED" not in run.stdout and "uid=" not in run.stdout
    results = orch(env, "sweep", "results", "grid", "--metric", "score", "-o", "json")
    rows = json.loads(results.stdout)
    assert [r["score"] for r in rows] == [3, 3, 2, 2, 1, 1]
    assert rows[0]["param.x"] == 3
    again = orch(env, "sweep", str(spec), "--resume")
    assert "0 trial(s) added, 6 already present" in again.stdout
    status = orch(env, "sweep", "status", "grid")
    assert "6/6" in status.stdout


def test_placeholder_without_parameter_submits_nothing(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    spec = tmp_path / "bad.yaml"
    spec.write_text("id: badsweep\npool: testpool\nworkdir: null\ntasks:\n  - command: echo {{nope}}\n"
                    "    search_space: {x: {choice: [1]}}\n")
    proc = orch(env, "sweep", str(spec))
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert orch(env, "jobs", "show", "badsweep").returncode == 3


def test_interrupted_grid_submission_resumes_without_duplicates(pool_home: dict[str, str], tmp_path: Path) -> None:
    from orchestrator.spec.loader import load_job
    from tests.support import jobs

    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP.replace("ID", "halfway"))
    jobs.submit_first("testpool", load_job(spec), 2)
    resumed = orch(env, "sweep", str(spec), "--resume", "--tail")
    assert resumed.returncode == 0, resumed.stderr
    assert "4 trial(s) added, 2 already present" in resumed.stderr
    tasks = jobs.backend_of("testpool").list_tasks(JobRef("testpool", "halfway"))
    assert sorted(t.id for t in tasks) == [f"trial-{i:05d}" for i in range(6)]
    assert orch(env, "sweep", "status", "halfway").stdout.count("6/6") == 1


def test_failing_custom_generator_names_file_line_and_key_and_submits_nothing(
        pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    (tmp_path / "gen.py").write_text("def generate():\n    yield {'x': 1}\n    raise RuntimeError('disk on fire')\n")
    spec = tmp_path / "custom.yaml"
    spec.write_text("id: customfail\npool: testpool\nworkdir: null\ntasks:\n  - command: echo {{x}}\n"
                    "    task_factory:\n      custom: {module: 'gen:generate'}\n")
    proc = orch(env, "--config-dir", str(tmp_path), "sweep", str(spec))
    assert proc.returncode == 2, proc.stderr
    assert f"{spec}:7:" in proc.stderr and "tasks[0].task_factory.custom.module" in proc.stderr
    assert "disk on fire" in proc.stderr
    assert orch(env, "jobs", "show", "customfail").returncode == 3
