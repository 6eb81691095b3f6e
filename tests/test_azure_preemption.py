"""Spot preemption on Azure, end to end on the local Batch service and Azurite: a preempted task,
a multi-instance task and a sweep trial are requeued by Batch and resume from the checkpoint they
saved in blob storage; `jobs show` says so, `logs --tail` follows the new attempt, and a Spot
autoscale pool covers preempted capacity with dedicated nodes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from orchestrator.backends.azure import naming
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.model import JobRef, TaskInfo, TaskState
from orchestrator.tail import RESTART_MARKER
from tests.batch_service import (
    BatchService,
    ServiceSettings,
    quick_autoscale,
)
from tests.support import batch_sdk
from tests.support.azure_stack import azure_services, config_folder
from tests.support.azurite import Azurite

pytestmark = pytest.mark.slow
MODULE_HOME: list[str] = []
IDENTITY = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ml/providers/" \
           "Microsoft.ManagedIdentity/userAssignedIdentities/orch-controller"
CLIENT = "4b1f5c9e-0000-4000-8000-00000000c1a0"
COUNT_PY = """import json, os, pathlib, sys, time
folder = pathlib.Path(os.environ["ORCH_CHECKPOINT_DIR"])
saved = folder / "step"
step = int(saved.read_text()) if saved.exists() else 0
print(f"attempt {os.environ['ORCH_TASK_ATTEMPT']} resumes at step {step}", flush=True)
while step < int(sys.argv[1]):
    time.sleep(1.0)
    step += 1
    staging = folder / ".step.tmp"
    staging.write_text(str(step))
    os.replace(staging, saved)
    print(f"step {step}", flush=True)
with open(os.environ["ORCH_METRICS_FILE"], "a") as metrics:
    metrics.write(json.dumps({"step": step, "score": float(sys.argv[2]) if len(sys.argv) > 2 else 0.0}) + "\\n")
"""
FAKE_MPIRUN = """#!/usr/bin/env python3
import os, sys
argv = sys.argv[1:]
start = argv.index("python3")  # the user's command: rank 0 only, on the primary
os.execvp(argv[start], argv[start:])
"""
POOL = f"""id: spotpool
backend: azure
nodes: {{dedicated: 0, spot: 3}}
max_tasks_per_node: 1
env: {{ORCH_PYTHON: '{sys.executable}', ORCH_CHECKPOINT_INTERVAL: '2'}}
azure: {{vm_size: D2s_v5, identity: {{resource_id: '{IDENTITY}', client_id: {CLIENT}}}}}
"""
SCALED = """id: scaledspot
backend: azure
azure: {vm_size: D2s_v5, autoscale: {scenario: pending_tasks, min_nodes: 2, max_nodes: 2, low_priority: true,
                                     replace_preempted_after: 1s}}
"""
SINGLE = """id: single
pool: spotpool
workdir: code
tasks: [{id: count, command: python3 count.py 8}]
"""
GANG = """id: gang
pool: spotpool
workdir: code
tasks: [{id: ranks, command: [python3, count.py, '8'], distributed: {launcher: mpi, nodes: 2}}]
"""
TRIALS = """id: trials
pool: spotpool
workdir: code
tasks:
  - id: trial
    command: python3 count.py 8 {{x}}
    search_space: {x: {uniform: [0, 1]}}
    sampling: bayesian
    seed: 5
    objective: {metric: score, goal: maximize}
    limits: {max_total_trials: 2, max_concurrent_trials: 2}
"""


wait_for = partial(batch_sdk.wait_for, timeout=90.0)  # Batch allocations and tasks take a while


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    settings = ServiceSettings(identities={IDENTITY: CLIENT}, operator_identity="0e7a0c55-0000-4000-8000-0000000000aa")
    fake = tmp_path_factory.mktemp("bin")
    (fake / "mpirun").write_text(FAKE_MPIRUN)
    (fake / "mpirun").chmod(0o755)
    MODULE_HOME[:] = [str(tmp_path_factory.mktemp("orch-home"))]
    env = {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "ORCH_HOME": MODULE_HOME[0]}  # module fixtures too
    with azure_services(tmp_path_factory, settings, identity_endpoint=True, env=env) as both:
        yield both


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, services: tuple[BatchService, Azurite]) -> Path:
    return config_folder(tmp_path_factory, services, {
        "code/count.py": COUNT_PY, "pool.yaml": POOL, "scaled.yaml": SCALED, "single.yaml": SINGLE, "gang.yaml": GANG,
        "trials.yaml": TRIALS}, resource_manager=True)


@pytest.fixture(autouse=True)
def orch_home(services: tuple[BatchService, Azurite], monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps the module's ORCH_HOME (set with the services) over conftest's per-test one."""
    monkeypatch.setenv("ORCH_HOME", MODULE_HOME[0])


def orch(config: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, cwd=config,
                            env={**os.environ, "ORCH_CONFIG_DIR": str(config)}, timeout=300)
    assert result.returncode == 0, f"orch {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def backend(config: Path) -> AzureBackend:
    orch(config, "pool", "create")
    return AzureBackend(config)


def task(backend: AzureBackend, job_id: str, task_id: str) -> TaskInfo:
    return next(t for t in backend.list_tasks(JobRef("spotpool", job_id)) if t.id == task_id)


def checkpoint_saved(backend: AzureBackend, job_id: str, task_id: str) -> bool:
    """Whether the task's checkpoint blob holds a saved checkpoint (not just the attempt count)."""
    store = backend.accounts.for_pool("spotpool").store
    assert store is not None
    blob = store.service.get_blob_client(naming.pool_container("spotpool"), naming.checkpoint_blob(job_id, task_id))
    try:
        return any(key.lower() == "orchsha256" for key in blob.get_blob_properties().metadata)
    except ResourceNotFoundError:
        return False


def preempt_when_saved(batch: BatchService, backend: AzureBackend, job_id: str, task_id: str,
                       node: Callable[[TaskInfo], str | None] = lambda t: t.node_id) -> str:
    """Preempt the node running the task once it has saved a checkpoint past step 2."""
    def progressed() -> bool:
        out = backend.read_file(JobRef("spotpool", job_id), task_id, "stdout")
        return out is not None and b"step 3" in out.data and checkpoint_saved(backend, job_id, task_id)
    wait_for(progressed, f"{job_id}/{task_id} to save a checkpoint")
    target = node(task(backend, job_id, task_id))
    assert target is not None
    return batch.preempt("spotpool", target).node_id


def resumed_at(stdout: bytes) -> int:
    """The step the last attempt resumed at."""
    line = [text for text in stdout.decode().splitlines() if "resumes at step" in text][-1]
    return int(line.rsplit(" ", 1)[1])


def finished(backend: AzureBackend, job_id: str, timeout: float = 180) -> None:
    wait_for(lambda: (info := backend.get_job(JobRef("spotpool", job_id))) is not None and info.finished,
             f"job {job_id}", timeout=timeout)


def test_a_preempted_task_resumes_from_its_checkpoint_and_is_followed(config: Path, backend: AzureBackend,
                                                                      services: tuple[BatchService, Azurite]) -> None:
    batch, _ = services
    orch(config, "jobs", "add", "single.yaml")
    wait_for(lambda: task(backend, "single", "count").state == TaskState.RUNNING, "the task to run")
    follower = subprocess.Popen([sys.executable, "-m", "orchestrator", "logs", "single", "count", "--tail"],
                                cwd=config, env={**os.environ, "ORCH_CONFIG_DIR": str(config)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    preempted = preempt_when_saved(batch, backend, "single", "count")
    finished(backend, "single")
    info = task(backend, "single", "count")
    assert info.state == TaskState.SUCCEEDED and info.retries == 0 and info.node_id != preempted
    assert [a.state for a in info.attempts] == ["preempted", "succeeded"]
    stdout = backend.read_file(JobRef("spotpool", "single"), "count", "stdout").data
    assert b"attempt 2 resumes at step" in stdout and resumed_at(stdout) >= 1 and b"step 8" in stdout
    assert "step 1" not in stdout.decode().splitlines()  # the new attempt did not start over
    shown = orch(config, "jobs", "show", "single")
    assert "preempted, requeued" in shown and "1 attempt(s) ended because their node was preempted" in shown
    followed, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0
    assert "attempt 1 resumes at step 0" in followed and RESTART_MARKER.strip() in followed
    assert followed.rstrip().endswith("step 8") and "attempt 2 resumes at step" in followed.split(RESTART_MARKER)[-1]
    assert checkpoint_saved(backend, "single", "count")
    orch(config, "jobs", "delete", "single", "-y")  # the same job id submitted again starts afresh
    assert not checkpoint_saved(backend, "single", "count")


def test_a_multi_instance_task_is_requeued_whole_and_resumes(backend: AzureBackend, config: Path,
                                                            services: tuple[BatchService, Azurite]) -> None:
    batch, _ = services
    orch(config, "jobs", "add", "gang.yaml")
    wait_for(lambda: task(backend, "gang", "ranks").state == TaskState.RUNNING, "the gang to run")
    api = backend.accounts.for_pool("spotpool").batch

    def secondary(info: TaskInfo) -> str | None:  # a node of the gang that is not its primary
        busy = [n.id for n in api.client.list_nodes("spotpool") if n.running_tasks_count]
        return next((n for n in busy if n != info.node_id), None)

    preempt_when_saved(batch, backend, "gang", "ranks", node=secondary)
    finished(backend, "gang")
    info = task(backend, "gang", "ranks")
    assert info.state == TaskState.SUCCEEDED and [a.state for a in info.attempts] == ["preempted", "succeeded"]
    stdout = backend.read_file(JobRef("spotpool", "gang"), "ranks", "stdout").data
    assert b"attempt 2 resumes at step" in stdout and resumed_at(stdout) >= 1


def test_a_preempted_sweep_trial_resumes_from_its_checkpoint(backend: AzureBackend, config: Path,
                                                            services: tuple[BatchService, Azurite]) -> None:
    batch, _ = services
    orch(config, "sweep", "trials.yaml")  # the controller adds both trials (Bayesian), as the pool's identity
    wait_for(lambda: any(t.id == "trial-00000" and t.state == TaskState.RUNNING
                         for t in backend.list_tasks(JobRef("spotpool", "trials"))), "the first trial to run")
    preempt_when_saved(batch, backend, "trials", "trial-00000")
    finished(backend, "trials", timeout=240)
    trials = {t.id: t for t in backend.list_tasks(JobRef("spotpool", "trials"))}
    assert {t.state for t in trials.values()} == {TaskState.SUCCEEDED} and len(trials) == 2
    assert [a.state for a in trials["trial-00000"].attempts] == ["preempted", "succeeded"]
    stdout = backend.read_file(JobRef("spotpool", "trials"), "trial-00000", "stdout").data
    assert b"attempt 2 resumes at step" in stdout and resumed_at(stdout) >= 1
    rows = json.loads(orch(config, "sweep", "results", "trials", "-o", "json"))
    assert len(rows) == 2 and all(row["score"] is not None for row in rows)


def test_a_spot_autoscale_pool_covers_preempted_capacity_with_dedicated_nodes(
        config: Path, services: tuple[BatchService, Azurite]) -> None:
    batch, _ = services
    with quick_autoscale(batch.settings, 0.3):
        orch(config, "pool", "create", "scaled.yaml")
        scaled = AzureBackend(config)
        api = scaled.accounts.for_pool("scaledspot").batch
        spot = wait_for(lambda: [n.id for n in api.client.list_nodes("scaledspot") if not n.is_dedicated],
                        "Spot nodes")
        batch.preempt("scaledspot", spot[0], restore_after_s=None)  # no Spot capacity comes back
        wait_for(lambda: api.client.get_pool("scaledspot").current_dedicated_nodes == 1, "a dedicated node")
        pool = api.client.get_pool("scaledspot")
        assert (pool.target_low_priority_nodes, pool.target_dedicated_nodes) == (2, 1)
        assert "$TargetDedicatedNodes=1" in pool.auto_scale_run.results
