"""Budgets kept where the work runs: the job's manager task on the pool's nodes (signed in as the
pool's managed identity) stops a sweep at the trial during which its budget is reached, ends a
job at its budget, and a pool at its ``max_spend`` takes no new job. Prices are made simple: a
node costs 1 USD a second (``price_per_node_hour: 3600``) and a task holds half of it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.backends.azure import budgets, naming
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.errors import ConflictError
from orchestrator.model import JobRef, TaskState
from orchestrator.plan import make_plan
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.submit import run_plan
from tests.batch_service import (
    BatchService,
    ServiceSettings,
    self_signed_cert,
    start_batch_service,
)
from tests.support.azurite import Azurite, start_azurite

pytestmark = pytest.mark.slow
IDENTITY = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ml/providers/" \
           "Microsoft.ManagedIdentity/userAssignedIdentities/orch-keeper"
CLIENT = "4b1f5c9e-0000-4000-8000-00000000b0d9"
OPERATOR = "0e7a0c55-0000-4000-8000-0000000000bb"
POOL = f"""id: metered
backend: azure
nodes: 1
max_tasks_per_node: 2
price_per_node_hour: 3600
idle_timeout: null
env: {{ORCH_PYTHON: '{sys.executable}'}}
azure: {{vm_size: D2s_v5, identity: {{resource_id: '{IDENTITY}', client_id: {CLIENT}}}}}
"""
SWEEP = {"id": "budgeted", "pool": "metered", "workdir": None, "tasks": [{
    "id": "trial", "command": "sleep 2", "search_space": {"lr": {"choice": [1, 2, 3, 4, 5, 6]}},
    "limits": {"max_concurrent_trials": 1, "budget": "2.75 USD"}}]}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    tls = self_signed_cert(tmp_path_factory.mktemp("tls"))
    settings = ServiceSettings(identities={IDENTITY: CLIENT}, operator_identity=OPERATOR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(tls.cert))
        with start_batch_service(tmp_path_factory.mktemp("batch"), tls=tls, settings=settings) as batch, \
                start_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
            patch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", batch.url)
            yield batch, azurite


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, services: tuple[BatchService, Azurite]) -> Path:
    batch, azurite = services
    folder = tmp_path_factory.mktemp("config")
    (folder / "pool.yaml").write_text(POOL)
    (folder / "credentials.yaml").write_text(
        f"batch: {{account: {batch.account}, url: '{batch.url}', key: '{batch.key}', "
        f"resource_id: '{batch.resource_id}', management_url: '{batch.url}'}}\n"
        f"storage: {{connection_string: '{azurite.connection_string}'}}\n")
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orch-home")


@pytest.fixture(autouse=True)
def orch_home(home: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> Path:
    monkeypatch.setenv("ORCH_HOME", str(home))
    monkeypatch.setenv("ORCH_CONFIG_DIR", str(config))
    return home


@pytest.fixture(scope="module")
def pool(config: Path, home: Path) -> str:
    env = {**os.environ, "ORCH_CONFIG_DIR": str(config), "ORCH_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "orchestrator", "pool", "create", "pool.yaml"], cwd=config, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return "metered"


def submit_with_budgets(backend: AzureBackend, spec: dict[str, object], base: Path) -> None:
    """Plan and submit like ``orch jobs add``, the launch carrying the spec's budgets."""
    job = JobSpec.model_validate(spec)
    plan = make_plan(job, pool_records.require(job.pool).pool_spec(), base_dir=base)
    sweeps = {task_id: task.limits.budget for task_id, task in zip(job.task_ids(), job.tasks)
              if task.limits is not None and getattr(task.limits, "budget", None) is not None}
    launch = replace(plan.job, budget=job.limits.budget if job.limits else None, sweep_budgets=sweeps)
    run_plan(replace(plan, job=launch), backend)


def finished(backend: AzureBackend, job_id: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (info := backend.get_job(JobRef("metered", job_id))).finished:
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {info}"
        time.sleep(0.3)
    return info


def test_a_sweep_stops_at_the_trial_during_which_its_budget_is_reached(pool: str, config: Path) -> None:
    backend = AzureBackend(config)
    submit_with_budgets(backend, SWEEP, config)
    job = finished(backend, "budgeted")
    tasks = {t.id: t for t in backend.list_tasks(JobRef(pool, "budgeted"))}
    assert [tasks["trial-00000"].state, tasks["trial-00001"].state] == [TaskState.SUCCEEDED] * 2
    stopped = tasks["trial-00002"]
    assert stopped.state == TaskState.STOPPED and stopped.error is not None
    assert "sweep 'trial' reached its budget of 2.75 USD" in stopped.error
    assert all(tasks[t].state == TaskState.STOPPED for t in tasks if t > "trial-00002")  # none ran past the budget
    spans = list(backend.usage(pool))
    sweep_spend = sum(s.cost for s in spans if s.job_id == "budgeted" and s.task_id != naming.SWEEP_MANAGER_ID)
    assert 2.75 <= sweep_spend < 2.75 + 0.5  # stopped at the limit, not a polling period after it
    assert job.state == "completed"
    log = backend.read_file(JobRef(pool, "budgeted"), naming.SWEEP_MANAGER_ID, "stderr")
    assert log is not None and b"Traceback" not in log.data and b"reached its budget" in log.data


def test_a_job_at_its_budget_is_ended_with_its_tasks_stopped(pool: str, config: Path) -> None:
    backend = AzureBackend(config)
    spec = {"id": "capped", "pool": pool, "workdir": None, "limits": {"budget": "3 USD"},
            "tasks": [{"id": f"t{i}", "command": "sleep 30"} for i in range(3)]}
    submit_with_budgets(backend, spec, config)
    job = finished(backend, "capped", 60)
    states = {t.id: (t.state, t.error) for t in backend.list_tasks(JobRef(pool, "capped"))}
    assert {state for state, _ in states.values()} == {TaskState.STOPPED}  # one ran, two never started
    assert all("the job's budget of 3.00 USD is reached" in (error or "") for _, error in states.values())
    assert job.state == "completed"
    state = budgets.read_state(backend.accounts.for_pool(pool).store, backend._container(pool), "capped")
    assert state is not None and state.job_reason is not None


def test_a_pool_past_its_max_spend_takes_no_job(pool: str, config: Path) -> None:
    backend = AzureBackend(config)
    record = pool_records.require(pool)
    spent = sum(s.cost for s in backend.usage(pool))
    record.spec = {**record.spec, "max_spend": spent / 2}
    pool_records.save(record)
    with pytest.raises(ConflictError) as refused:
        submit_with_budgets(backend, {"id": "late", "pool": pool, "workdir": None,
                                      "tasks": [{"id": "t", "command": "true"}]}, config)
    assert "max_spend" in str(refused.value) and backend.get_job(JobRef(pool, "late")) is None
