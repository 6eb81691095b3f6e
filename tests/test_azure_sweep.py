"""Adaptive sweeps on Azure: the controller runs as the Batch job manager task, with the job token,
against the local Batch service over HTTPS and Azurite; the submitting `orch sweep` returns at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import models as m

from orchestrator.backends.azure import naming, sweep_setup
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.backends.azure.spec import PoolIdentity
from orchestrator.backends.azure.task_model import TaskContext
from orchestrator.model import JobInfo, JobRef, TaskState
from orchestrator.spec.job import JobSpec
from orchestrator.sweep.controller import ControllerSettings
from tests.batch_service import (
    BatchService,
    ServiceSettings,
)
from tests.support.azure_stack import azure_services, config_folder
from tests.support.azurite import Azurite

POOL = f"""id: sweeppool
backend: azure
nodes: 2
env: {{ORCH_PYTHON: '{sys.executable}'}}
azure: {{vm_size: D2s_v5, task_authentication_tokens: true}}
"""
STEPS_SH = """#!/bin/sh
for step in 1 2 3 4 5 6 7 8; do
  echo "{\\"step\\": $step, \\"acc\\": $1}" >> "$ORCH_METRICS_FILE"
  sleep 0.5
done
"""
EARLY = """id: early
pool: sweeppool
workdir: code
tasks:
  - id: trial
    command: sh steps.sh {{quality}}
    search_space: {quality: {choice: [0.9, 0.2, 0.85, 0.1]}}
    objective: {metric: acc, goal: maximize}
    limits: {max_concurrent_trials: 2}
    early_termination: {policy: bandit, slack_amount: 0.2, delay_evaluation: 2}
"""
BAYES = """id: bayes
pool: sweeppool
workdir: null
tasks:
  - id: trial
    command: |
      echo '{"step": 1, "score": {{x}}}' >> "$ORCH_METRICS_FILE"
    search_space: {x: {uniform: [0, 1]}}
    sampling: bayesian
    seed: 3
    objective: {metric: score, goal: maximize}
    limits: {max_total_trials: 4, max_concurrent_trials: 2}
"""


def test_the_manager_task_asks_for_a_job_token_and_leaves_the_job_to_the_seal() -> None:
    body = sweep_setup.manager_task("https://blob/payload?sig", {"ORCH_PYTHON": "/venv/bin/python"}).as_dict()
    assert body["id"] == naming.SWEEP_MANAGER_ID and body["killJobOnCompletion"] is False
    assert body["authenticationTokenSettings"] == {"access": ["job"]}
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env == {"ORCH_PYTHON": "/venv/bin/python", sweep_setup.PAYLOAD_URL_ENV: "https://blob/payload?sig"}
    assert "orchestrator.backends.azure.sweep_manager" in body["commandLine"]


def test_with_a_pool_identity_the_manager_task_asks_for_no_job_token() -> None:
    identity = PoolIdentity(resource_id="/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/"
                                        "userAssignedIdentities/orch")
    body = sweep_setup.manager_task("https://blob/payload?sig", {}, identity=identity).as_dict()
    assert "authenticationTokenSettings" not in body
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env[sweep_setup.IDENTITY_RESOURCE_ENV] == identity.resource_id  # no client id given: by resource id


def test_the_manager_payload_round_trips_job_settings_and_task_context() -> None:
    job = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [{"command": "echo {{x}}", "search_space": {
        "x": {"uniform": [0, 1]}}, "sampling": "bayesian", "limits": {"max_total_trials": 3},
        "objective": {"metric": "m", "goal": "minimize"}}]})
    context = TaskContext(pool_id="p", job_id="j", vm_size="D2s_v5", cpus_per_node=2, gpus_per_node=0,
                          slots_per_node=2, pool_env={"A": "1"}, workdir_url="http://w", outputs_url="http://o",
                          output_condition="taskcompletion",
                          container=m.BatchTaskContainerSettings(image_name="img:1", container_run_options="--rm"),
                          input_files=(m.ResourceFile(http_url="http://i", file_path="data/x"),),
                          checkpoint_helper_url="http://h.py")
    payload = sweep_setup.ManagerPayload(job=job, settings=ControllerSettings(pool_nodes=3), context=context,
                                         stopped_url="http://s", checkpoint_urls={"task-0-00000": "http://c?sig=w"})
    back = sweep_setup.ManagerPayload.from_json(payload.to_json())
    assert (back.job, back.settings, back.stopped_url) == (job, payload.settings, "http://s")
    assert back.checkpoint_urls == {"task-0-00000": "http://c?sig=w"}
    assert back.context.container is not None and back.context.container.as_dict() == context.container.as_dict()
    assert [f.as_dict() for f in back.context.input_files] == [{"httpUrl": "http://i", "filePath": "data/x"}]
    assert (back.context.pool_env, back.context.workdir_url) == ({"A": "1"}, "http://w")
    assert back.context.checkpoint_helper_url == "http://h.py"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    # the controller authenticates with a task authentication token, which Batch retired on 30 September
    # 2024: only an account that still allows it runs adaptive sweeps this way (see the README)
    token_account = ServiceSettings(account_features=frozenset({"authenticationTokenSettings"}))
    with azure_services(tmp_path_factory, token_account) as both:
        yield both


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, services: tuple[BatchService, Azurite]) -> Path:
    return config_folder(tmp_path_factory, services, {
        "code/steps.sh": STEPS_SH, "pool.yaml": POOL, "early.yaml": EARLY, "bayes.yaml": BAYES})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orch-home")


@pytest.fixture(autouse=True)
def orch_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_HOME", str(home))
    return home


def orch(config: Path, home: Path, *args: str) -> str:
    env = {**os.environ, "ORCH_HOME": str(home), "ORCH_CONFIG_DIR": str(config)}
    result = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                            cwd=config, env=env, timeout=300)
    assert result.returncode == 0, f"orch {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def pool(config: Path, home: Path) -> str:
    orch(config, home, "pool", "create")
    return "sweeppool"


def finished(backend: AzureBackend, job_id: str, timeout: float = 180) -> JobInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = backend.get_job(JobRef("sweeppool", job_id))
        if info is not None and info.finished:
            return info
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.slow
def test_early_termination_runs_in_the_job_manager_task(config: Path, home: Path, pool: str) -> None:
    orch(config, home, "sweep", "early.yaml")  # returns once the controller task has its payload
    backend = AzureBackend(config)
    running = backend.get_job(JobRef("sweeppool", "early"))
    assert running is not None and not running.finished
    deadline = time.monotonic() + 60
    while not (state := backend.sweep_state(JobRef("sweeppool", "early")) or {}).get("passes"):
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state["running"] is True and state["last_error"] is None and len(state["sweeps"]) == 1  # type: ignore[arg-type]
    job = finished(backend, "early")
    assert backend.sweep_state(JobRef("sweeppool", "early")) is None
    states = {task.id: task.state for task in backend.list_tasks(JobRef("sweeppool", "early"))}
    assert states == {"trial-00000": TaskState.SUCCEEDED, "trial-00001": TaskState.STOPPED,
                      "trial-00002": TaskState.SUCCEEDED, "trial-00003": TaskState.STOPPED}
    assert job.state == "completed" and naming.SWEEP_MANAGER_ID not in states
    assert dict(job.task_counts) == {"succeeded": 2, "stopped": 2}
    rows = json.loads(orch(config, home, "sweep", "results", "early", "-o", "json"))
    assert {r["trial"]: r["state"] for r in rows}["trial-00001"] == "stopped"
    log = backend.read_file(JobRef("sweeppool", "early"), naming.SWEEP_MANAGER_ID, "stderr")
    assert log is not None and b"stopping trial-00001" in log.data and b"Traceback" not in log.data


@pytest.mark.slow
def test_bayesian_sweep_reaches_max_total_trials_in_the_cloud(config: Path, home: Path, pool: str) -> None:
    orch(config, home, "sweep", "bayes.yaml")
    backend = AzureBackend(config)
    job = finished(backend, "bayes")
    states = {task.id: task.state for task in backend.list_tasks(JobRef("sweeppool", "bayes"))}
    assert states == {f"trial-{i:05d}": TaskState.SUCCEEDED for i in range(4)}
    assert job.state == "completed"
    rows = json.loads(orch(config, home, "sweep", "results", "bayes", "-o", "json"))
    assert len(rows) == 4 and all(row["score"] is not None for row in rows)
