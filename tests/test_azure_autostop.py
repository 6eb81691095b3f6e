"""Autostop on Azure: the formula orch gives a pool with an ``idle_timeout`` (pure, evaluated the
way the local Batch service evaluates it), and end to end: an idle pool shrinks to zero nodes
with no orch process alive, says so, and starts again on the next ``orch jobs add``."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from orchestrator.backends.azure import autostop, pool_model
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.spec.loader import load_pool
from orchestrator.spec.pool import PoolSpec
from tests.batch_service import BatchService, quick_autoscale, start_batch_service
from tests.support.batch_sdk import client_for, wait_for
from tests.support.formulas import targets_after

REPO = Path(__file__).resolve().parent.parent
WAKE = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def azure_pool(**fields: object) -> PoolSpec:
    return PoolSpec.model_validate({"id": "p", "backend": "azure", "nodes": {"dedicated": 2, "spot": 1},
                                    "azure": {"vm_size": "D2s_v5"}, **fields})


def targets(spec: PoolSpec, minutes_after_wake: float, pending_until: float | None = None,
            pending_now: float = 0) -> tuple[int, int]:
    """The pool's targets ``minutes_after_wake`` after orch woke it, when tasks were pending until
    ``pending_until`` minutes ago (None: never in the last half hour)."""
    formula = pool_model.pool_formula(spec, WAKE)
    assert formula is not None
    changed = {"$PendingTasks": (1.0, pending_until * 60)} if pending_until is not None else None
    return targets_after(formula, {"$PendingTasks": pending_now}, now=WAKE + timedelta(minutes=minutes_after_wake),
                         changed=changed)


def test_a_pool_keeps_its_nodes_until_no_task_was_about_for_its_idle_timeout() -> None:
    spec = azure_pool(idle_timeout="10m")
    assert targets(spec, 5) == (2, 1)  # just woken: it gets its idle time to receive work
    assert targets(spec, 20, pending_until=8) == (2, 1)  # a task ended 8 minutes ago
    assert targets(spec, 20, pending_until=11) == (0, 0)  # quiet for 11 minutes: Spot and dedicated alike
    assert targets(spec, 20) == (0, 0)
    assert targets(spec, 20, pending_now=3) == (2, 1)  # work in the latest sample


def test_autostop_wraps_the_pool_s_own_autoscale() -> None:
    scenario = azure_pool(idle_timeout="10m", azure={"vm_size": "D2s_v5", "autoscale": {
        "scenario": "pending_tasks", "min_nodes": 1, "max_nodes": 4}})
    assert targets(scenario, 5) == (1, 0) and targets(scenario, 20, pending_now=5) == (3, 0)  # 2 slots a node
    assert targets(scenario, 20) == (0, 0)  # below min_nodes once idle
    custom = azure_pool(idle_timeout="10m", azure={"vm_size": "D2s_v5", "autoscale": {
        "formula": "$TargetDedicatedNodes = 3; $NodeDeallocationOption = requeue"}})
    assert targets(custom, 5) == (3, 0) and targets(custom, 20) == (0, 0)


def test_azure_pools_stop_after_fifteen_minutes_unless_told_otherwise(tmp_path: Path) -> None:
    assert azure_pool().idle_timeout == autostop.DEFAULT_IDLE_TIMEOUT == 900
    never = azure_pool(idle_timeout=None)
    assert never.idle_timeout is None and pool_model.pool_formula(never, WAKE) is None  # fixed size, never stops
    body = pool_model.pool_create_options(azure_pool(), _credentials(), WAKE).as_dict()
    assert body["enableAutoScale"] and body["autoScaleEvaluationInterval"] == "PT05M00S"
    assert autostop.wake_of(body["autoScaleFormula"]) == WAKE
    template = load_pool(REPO / "templates" / "azure_pool.yaml")
    assert template.idle_timeout == 1800 and not template.autodelete
    assert pool_model.fingerprint(azure_pool(idle_timeout="1h", max_spend="50 USD")) == pool_model.fingerprint(
        azure_pool())  # cost settings are applied to the pool as it is, not a different pool


def test_a_stopped_pool_and_when_an_idle_one_stops_are_read_from_its_last_evaluation() -> None:
    formula = pool_model.pool_formula(azure_pool(idle_timeout="10m"), WAKE)
    later = pool_model.pool_formula(azure_pool(idle_timeout="10m"), WAKE + timedelta(hours=1))
    assert autostop.same_formula(formula, later) and not autostop.same_formula(formula, pool_model.pool_formula(
        azure_pool(idle_timeout="20m"), WAKE))
    run = SimpleNamespace(results="$TargetDedicatedNodes=0;$NodeDeallocationOption=taskcompletion;orch_idle=1",
                          timestamp=WAKE, error=None)
    stopped = SimpleNamespace(enable_auto_scale=True, auto_scale_run=run, target_dedicated_nodes=0,
                              target_low_priority_nodes=0, auto_scale_evaluation_interval=timedelta(minutes=5))
    assert autostop.is_stopped(stopped)
    assert not autostop.is_stopped(SimpleNamespace(**{**vars(stopped), "target_dedicated_nodes": 2}))
    quiet = WAKE.timestamp() + 60  # quiet since a minute after the last evaluation
    assert autostop.stops_at(stopped, 600, quiet) == WAKE.timestamp() + 900  # the first evaluation after 11 minutes


def _credentials():  # type: ignore[no-untyped-def]
    from orchestrator.backends.azure.credentials import Credentials

    return Credentials.model_validate({"batch": {"account": "abc", "url": "http://h", "key": "a2V5"}})


# -- end to end: no orch process alive ----------------------------------------------------------
POOL = """id: napper
backend: azure
nodes: {dedicated: 1, spot: 1}
idle_timeout: 3s
azure: {vm_size: D2s_v5}
"""
JOB = """id: {job}
pool: napper
workdir: null
tasks: [{{id: work, command: sleep 1}}]
"""


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchService]:
    with start_batch_service(tmp_path_factory.mktemp("batch")) as service:
        yield service


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, batch: BatchService) -> Path:
    folder = tmp_path_factory.mktemp("config")
    (folder / "pool.yaml").write_text(POOL)
    for job in ("first", "second"):
        (folder / f"{job}.yaml").write_text(JOB.format(job=job))
    (folder / "credentials.yaml").write_text(f"batch: {{account: {batch.account}, url: '{batch.url}', "
                                             f"key: '{batch.key}'}}\n")
    return folder


def orch(config: Path, *args: str) -> str:
    """One orch command, as a process that exits before the test goes on."""
    env = {**os.environ, "ORCH_CONFIG_DIR": str(config)}
    done = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, cwd=config,
                          env=env, timeout=300)
    assert done.returncode == 0, f"orch {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def nodes(client: BatchClient) -> list[m.BatchNode]:
    return list(client.list_nodes("napper"))


@pytest.mark.slow
def test_an_idle_pool_stops_itself_with_no_orch_process_and_starts_on_the_next_job(
        batch: BatchService, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CONFIG_DIR", str(config))
    client = client_for(batch)
    with quick_autoscale(batch.settings, 1.0, sample_s=0.2, delay_s=0.4):  # Batch: 5 min, 30 s, ~1 min
        orch(config, "pool", "create", "pool.yaml")
        assert len(nodes(client)) == 2  # one dedicated, one Spot
        orch(config, "jobs", "add", "first.yaml")  # the CLI exits: from here on only Batch acts
        ended = wait_for(lambda: (task := client.get_task("first", "work")).state == m.BatchTaskState.COMPLETED
                         and task, "the task to end", timeout=60)
        backend = AzureBackend(config)
        idle = wait_for(lambda: (info := backend.get_pool("napper")).stops_at is not None and info, "an idle pool")
        assert idle.stops_at >= ended.execution_info.end_time.timestamp() + 3  # `pool show` says when it will stop
        pool = wait_for(lambda: (pool := client.get_pool("napper")).current_dedicated_nodes == 0
                        and pool.current_low_priority_nodes == 0 and not nodes(client) and pool, "zero nodes", 60)
        stopped_after = pool.allocation_state_transition_time.timestamp() - ended.execution_info.end_time.timestamp()
        assert 3.0 <= stopped_after <= 3.0 + 1.0 + 0.4 + 1.5  # idle_timeout + one interval + the sample delay
        assert backend.get_pool("napper").state == "stopped"
        submitted = time.time()
        orch(config, "jobs", "add", "second.yaml")  # wakes it: Batch evaluates the formula at once
        started = wait_for(lambda: (task := client.get_task("second", "work")).execution_info.start_time
                           and task, "the task to start on a new node", 60)
        assert started.execution_info.start_time.timestamp() - submitted < 5.0  # allocation, not an interval
        assert backend.get_pool("napper").state == "ready"


@pytest.mark.slow
def test_an_autodelete_pool_stops_server_side_and_the_next_look_deletes_it(
        batch: BatchService, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CONFIG_DIR", str(config))
    (config / "gone.yaml").write_text(POOL.replace("napper", "tidy").replace("idle_timeout: 3s",
                                                                              "idle_timeout: 2s\nautodelete: true"))
    client = client_for(batch)
    with quick_autoscale(batch.settings, 1.0, sample_s=0.2, delay_s=0.4):
        orch(config, "pool", "create", "gone.yaml")
        wait_for(lambda: not list(client.list_nodes("tidy")) and client.get_pool("tidy").target_dedicated_nodes == 0,
                 "the pool to stop by itself", 60)
        info = AzureBackend(config).get_pool("tidy")
        assert info is not None and info.state == "deleting" and "autodelete" in info.detail
        wait_for(lambda: "tidy" not in {p.id for p in client.list_pools()}, "Batch to delete it", 30)
