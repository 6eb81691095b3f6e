"""Cost control on real local Ray pools: an idle pool stops itself with no orch process running and
comes back with its jobs; budgets stop a sweep at the right trial and a pool at its max_spend; the
ledger outlives a manager restart and the pool's deletion."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml

from orchestrator import pools
from orchestrator.backend import load_backend
from orchestrator.backends.ray import local_cluster, pool_ops
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.cost.report import cost_report
from orchestrator.model import JobRef, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.pool import PoolSpec
from tests.support import jobs

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
PER_SECOND = 3600.0  # price_per_node_hour: 1 USD per node second


def orch(*args: str, home: Path, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a process of its own, gone when this returns."""
    env = {**os.environ, "ORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def record(pool_id: str) -> ClusterRecord:
    return ClusterRecord.of(pool_records.require(pool_id))


def test_an_idle_pool_stops_itself_with_no_orch_process_and_comes_back_with_its_jobs(
        tmp_path: Path, orch_home: Path) -> None:
    pool = write(tmp_path / "pool.yaml", {"id": "idler", "nodes": 2, "cpus_per_node": 1, "idle_timeout": "6s",
                                          "price_per_node_hour": PER_SECOND})
    first = write(tmp_path / "first.yaml", {"id": "first", "pool": "idler", "workdir": None,
                                            "tasks": [{"id": f"t{i}", "command": "echo hi"} for i in range(2)]})
    second = write(tmp_path / "second.yaml", {"id": "second", "pool": "idler", "workdir": None,
                                              "tasks": [{"id": "again", "command": "echo back"}]})
    assert orch("pool", "create", str(pool), home=orch_home, cwd=tmp_path).returncode == 0
    try:
        assert orch("jobs", "add", str(first), "--tail", home=orch_home, cwd=tmp_path).returncode == 0
        shown = orch("pool", "show", "idler", home=orch_home, cwd=tmp_path).stdout
        assert "idle: stops itself at" in shown, shown
        marks = record("idler").node_marks()
        assert local_cluster.cluster_processes(marks)
        deadline = time.monotonic() + 60  # from here on no orch process runs: only files and processes are looked at
        while record("idler").stopped_at is None:
            assert time.monotonic() < deadline, "the pool did not stop itself"
            time.sleep(0.5)
        assert not local_cluster.cluster_processes(marks), "every process of the pool is gone"
        status = orch("pool", "show", "idler", home=orch_home, cwd=tmp_path).stdout
        assert "idler: stopped" in status and "stopped itself at" in status, status
        listed = json.loads(orch("jobs", "list", "-o", "json", home=orch_home, cwd=tmp_path).stdout)
        assert [job["id"] for job in listed] == ["first"], "a stopped pool's jobs are still listed"
        started = time.monotonic()
        assert orch("jobs", "add", str(second), "--tail", home=orch_home, cwd=tmp_path).returncode == 0
        assert time.monotonic() - started < 120
        listed = json.loads(orch("jobs", "list", "-o", "json", home=orch_home, cwd=tmp_path).stdout)
        assert {job["id"]: job["task_counts"] for job in listed} == {"first": {"succeeded": 2},
                                                                    "second": {"succeeded": 1}}
        assert record("idler").stopped_at is None
        spend = cost_report(pool_id="idler").pools[0].spend
        assert spend is not None and spend.job("first").usd > 0 and spend.idle.usd > 0
    finally:
        orch("pool", "delete", "idler", "--force", "-y", home=orch_home, cwd=tmp_path)


def test_autodelete_removes_the_idle_pool_but_keeps_its_ledger(tmp_path: Path, orch_home: Path) -> None:
    pool = write(tmp_path / "pool.yaml", {"id": "brief", "nodes": 1, "idle_timeout": 3, "autodelete": True,
                                          "price_per_node_hour": PER_SECOND})
    assert orch("pool", "create", str(pool), home=orch_home, cwd=tmp_path).returncode == 0
    marks = record("brief").node_marks()
    deadline = time.monotonic() + 60
    while pool_records.load("brief") is not None:
        assert time.monotonic() < deadline, "the pool did not delete itself"
        time.sleep(0.5)
    assert not local_cluster.cluster_processes(marks)
    out = orch("cost", "--pool", "brief", "-o", "json", home=orch_home, cwd=tmp_path)
    pools_seen = json.loads(out.stdout)["pools"]
    assert pools_seen[0]["deleted"] and pools_seen[0]["usd"] > 3, out.stdout


@pytest.fixture
def priced_pool() -> str:
    pools.create_pool(PoolSpec.model_validate({"id": "priced", "nodes": 2, "cpus_per_node": 1,
                                               "price_per_node_hour": PER_SECOND}))
    yield "priced"
    if pool_records.load("priced") is not None:
        pools.delete_pool("priced", force=True)


def test_a_budget_stops_a_sweep_at_the_right_trial(priced_pool: str) -> None:
    jobs.submit(priced_pool, {"id": "sweep", "tasks": [{
        "id": "trial", "command": "echo '{\"acc\": {{x}}}' >> $ORCH_METRICS_FILE; sleep 3",
        "search_space": {"x": {"choice": [1, 2, 3, 4, 5]}}, "objective": {"metric": "acc", "goal": "maximize"},
        "limits": {"max_concurrent_trials": 1, "budget": "7.5 USD"}}]})
    info = jobs.wait_job(priced_pool, "sweep", timeout=90)
    tasks = {task.id: task for task in load_backend("ray").list_tasks(JobRef(priced_pool, "sweep"))}
    assert info.task_counts == {"succeeded": 2, "stopped": 3}
    third = tasks["trial-00002"]
    assert third.state == TaskState.STOPPED and third.error is not None and "budget" in third.error
    assert third.started_at and third.ended_at and 1.0 < third.ended_at - third.started_at < 2.5, \
        "stopped when 7.5 USD was spent: 1.5 s into its 3 s"
    assert all(tasks[t].started_at is None and tasks[t].state == TaskState.STOPPED for t in ("trial-00003", "trial-00004"))
    spend = cost_report(pool_id=priced_pool, job_id="sweep").pools[0].spend
    assert spend is not None and spend.job("sweep").usd == pytest.approx(7.5, abs=0.5)
    from click.testing import CliRunner

    from orchestrator.cli.root import cli

    out = CliRunner().invoke(cli, ["sweep", "results", "sweep"]).output
    assert "COST_USD" in out and "best found after" in out and "trial-00002" in out, out


def test_a_job_budget_stops_its_running_tasks(priced_pool: str) -> None:
    jobs.submit(priced_pool, {"id": "capped", "limits": {"budget": 4},
                              "tasks": [{"id": f"t{i}", "command": "sleep 30"} for i in range(3)]})
    info = jobs.wait_job(priced_pool, "capped", timeout=60)
    assert info.task_counts == {"stopped": 3}
    tasks = load_backend("ray").list_tasks(JobRef(priced_pool, "capped"))
    assert all("limits.budget" in (task.error or "") for task in tasks)
    assert tasks[2].started_at is None, "the third task never started: both nodes were held until the end"


def test_the_ledger_survives_a_manager_restart_and_pool_delete(priced_pool: str) -> None:
    jobs.submit(priced_pool, {"id": "before", "tasks": [{"id": f"t{i}", "command": "sleep 2"} for i in range(2)]})
    jobs.wait_job(priced_pool, "before")
    time.sleep(1.5)  # the ledger is written each second
    cost_before = cost_report(pool_id=priced_pool).pools[0].spend
    assert cost_before is not None and cost_before.job("before").usd == pytest.approx(4, abs=0.2)
    manager = pool_ops.get_manager(priced_pool)
    os.kill(ray.get(manager.pid.remote(), timeout=30), signal.SIGKILL)  # type: ignore[union-attr]
    jobs.submit(priced_pool, {"id": "after", "tasks": [{"id": "t", "command": "sleep 1"}]})
    jobs.wait_job(priced_pool, "after", timeout=120)
    marks = record(priced_pool).node_marks()
    pools.delete_pool(priced_pool, force=True)
    deleted_at = time.time()
    report = cost_report(pool_id=priced_pool)
    assert report.pools and report.pools[0].deleted
    spend = report.pools[0].spend
    assert spend is not None and spend.job("before").usd == pytest.approx(cost_before.job("before").usd, abs=0.01)
    assert spend.job("after").usd == pytest.approx(1, abs=0.2)
    raylets = [mark.start_time for node in marks for mark in node if mark.exe and mark.exe.endswith("raylet")]
    independent = sum(deleted_at - start for start in raylets)
    assert spend.total.usd == pytest.approx(independent, rel=0.03), "node time x price, from the raylets' lives"


def test_a_pool_on_a_users_cluster_gives_back_its_nodes_when_idle_and_takes_them_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "head-home"))  # the manager keeps its journal under the head's home
    cluster = local_cluster.start(tmp_path / "users-cluster", 1, 2, 0)
    try:
        pools.create_pool(PoolSpec.model_validate({
            "id": "guest", "nodes": 1, "cpus_per_node": 1, "idle_timeout": 4, "price_per_node_hour": PER_SECOND,
            "ray": {"address": cluster.address, "auth_token_file": cluster.token_file}}))
        backend = load_backend("ray")
        deadline = time.monotonic() + 60
        while (info := backend.get_pool("guest")) is None or info.state != "stopped":
            assert time.monotonic() < deadline, f"the pool did not give its nodes back: {info}"
            time.sleep(0.5)
        assert info.nodes == () and "stopped itself" in info.detail
        with pytest.raises(ValueError):
            ray.util.get_placement_group("orch-pool-guest")
        assert local_cluster.cluster_processes(cluster.nodes), "the user's cluster is left running"
        jobs.submit("guest", {"id": "back", "tasks": [{"id": "t", "command": "true"}]})
        assert jobs.wait_job("guest", "back").task_counts == {"succeeded": 1}
        assert backend.get_pool("guest").state == "ready"  # type: ignore[union-attr]
        pools.delete_pool("guest", force=True)
        nodes = {span.node_id for span in backend.usage("guest")}  # type: ignore[attr-defined]
        assert len(nodes) == 2, "the node's two stretches in the pool, kept after the pool was deleted"
    finally:
        ray.shutdown()
        local_cluster.stop(cluster.nodes)
        local_cluster.remove_temp_dir(tmp_path / "users-cluster")
