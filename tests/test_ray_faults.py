"""Jobs survive faults on a real local Ray pool: the pool manager killed, a node lost, the whole
machine restarted (every pool process killed). Each ends with every task accounted for exactly
once and nothing of the pool left running."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import ray

from orchestrator import pools
from orchestrator.backend import load_backend
from orchestrator.backends.ray import local_cluster, pool_ops
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.model import JobRef, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.pool import PoolSpec
from tests.support import jobs

pytestmark = pytest.mark.slow
POOL = "faultpool"


@pytest.fixture
def pool() -> Iterator[str]:
    pools.create_pool(PoolSpec.model_validate({"id": POOL, "nodes": 2, "cpus_per_node": 1}))
    try:
        yield POOL
    finally:
        if pool_records.load(POOL) is not None:
            pools.delete_pool(POOL, force=True)


def ref(job_id: str) -> JobRef:
    return JobRef(POOL, job_id)


def tasks_of(job_id: str) -> dict[str, object]:
    return {task.id: task for task in load_backend("ray").list_tasks(ref(job_id))}


def raylet_of(index: int) -> int:
    """Which raylet of the local cluster (the order they were started) hosts pool node ``index``."""
    node_id = load_backend("ray").get_pool(POOL).nodes[index].id  # type: ignore[union-attr]
    resources = next(node["Resources"] for node in ray.nodes() if node["NodeID"] == node_id)
    return next(int(name.rsplit("_", 1)[1]) for name in resources if name.startswith("orch_node_"))


def victim() -> int:
    """A pool node whose raylet is not the head's (killing the head ends the whole cluster)."""
    return next(index for index in range(2) if raylet_of(index) != 0)


def kill_node(index: int) -> None:
    """SIGKILL every process of the raylet hosting pool node ``index`` (the machine dies)."""
    cluster = ClusterRecord.of(pool_records.require(POOL))
    for proc in local_cluster.cluster_processes([cluster.node_marks()[raylet_of(index)]]):
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def test_a_killed_manager_is_restarted_and_runs_nothing_twice(pool: str, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    jobs.submit(pool, {"id": "calm", "max_retries": 1, "tasks": [
        {"id": f"t{i}", "command": f"sleep 4; echo t{i} >> {marker}"} for i in range(3)]})
    jobs.wait_state(pool, "calm", "t0", TaskState.RUNNING)
    manager = pool_ops.get_manager(pool)
    assert manager is not None
    pid = ray.get(manager.pid.remote(), timeout=30)
    os.kill(pid, signal.SIGKILL)
    info = jobs.wait_job(pool, "calm", timeout=120)
    assert dict(info.task_counts) == {"succeeded": 3}
    assert sorted(marker.read_text().split()) == ["t0", "t1", "t2"], "every task ran exactly once"
    assert all(len(task.attempts) == 1 for task in tasks_of("calm").values())  # type: ignore[attr-defined]
    assert ray.get(pool_ops.get_manager(pool).pid.remote(), timeout=30) != pid  # type: ignore[union-attr]


def test_the_manager_runs_on_the_head_node(pool: str) -> None:
    manager = pool_ops.get_manager(pool)
    head = next(node["NodeID"] for node in ray.nodes() if pool_ops.HEAD_RESOURCE in node.get("Resources", {}))
    assert ray.get(manager.node_id.remote(), timeout=30) == head  # type: ignore[union-attr]


def test_a_lost_node_loses_its_attempts_which_are_retried_elsewhere(pool: str, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    jobs.submit(pool, {"id": "fragile", "max_retries": 1, "tasks": [  # one task per node; node 1's is lost
        {"id": f"t{i}", "command": f"echo start-$ORCH_TASK_ATTEMPT >> {marker}.$ORCH_TASK_ID; sleep 8"}
        for i in range(2)]})
    for task_id in ("t0", "t1"):
        jobs.wait_state(pool, "fragile", task_id, TaskState.RUNNING)
    lost_node = victim()
    on_node_1 = next(t for t in tasks_of("fragile").values() if t.node_id == str(lost_node))  # type: ignore[attr-defined]
    sleepers = [p for p in psutil.process_iter(["cmdline"]) if "sleep 8" in " ".join(p.info["cmdline"] or [])]
    kill_node(lost_node)
    deadline = time.monotonic() + 30
    while not any(n.state == "down" for n in load_backend("ray").get_pool(pool).nodes):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "a dead node is noticed within 30 s"
        time.sleep(0.5)
    info = jobs.wait_job(pool, "fragile", timeout=120)
    assert dict(info.task_counts) == {"succeeded": 2}
    retried = tasks_of("fragile")[on_node_1.id]  # type: ignore[attr-defined]
    assert [a.state for a in retried.attempts] == ["lost", "succeeded"]  # type: ignore[attr-defined]
    assert retried.node_id == str(1 - lost_node)  # type: ignore[attr-defined]
    assert (tmp_path / f"runs.{on_node_1.id}").read_text().split() == ["start-0", "start-1"]  # type: ignore[attr-defined]
    time.sleep(1)
    assert not [p for p in sleepers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "the lost node's task process was killed"


def test_a_restarted_machine_keeps_every_job_and_retries_what_was_running(pool: str, tmp_path: Path) -> None:
    jobs.submit(pool, {"id": "done-before", "tasks": [{"id": "quick", "command": "true"}]})
    jobs.wait_job(pool, "done-before")
    jobs.submit(pool, {"id": "interrupted", "max_retries": 1, "tasks": [
        {"id": "long", "command": f"echo $ORCH_TASK_ATTEMPT >> {tmp_path}/attempts; sleep 6"}]})
    jobs.wait_state(pool, "interrupted", "long", TaskState.RUNNING)
    cluster = ClusterRecord.of(pool_records.require(pool))
    ray.shutdown()
    doomed = local_cluster.cluster_processes(cluster.node_marks())
    for proc in doomed:
        proc.send_signal(signal.SIGKILL)  # the machine goes down: every pool process at once
    psutil.wait_procs(doomed, timeout=30)
    pools.create_pool(PoolSpec.model_validate({"id": POOL, "nodes": 2, "cpus_per_node": 1}))
    assert load_backend("ray").get_job(ref("done-before")).task_counts == {"succeeded": 1}  # type: ignore[union-attr]
    info = jobs.wait_job(pool, "interrupted", timeout=120)
    assert dict(info.task_counts) == {"succeeded": 1}
    attempts = tasks_of("interrupted")["long"].attempts  # type: ignore[attr-defined]
    assert [a.state for a in attempts] == ["lost", "succeeded"]
    assert (tmp_path / "attempts").read_text().split() == ["0", "1"]


def test_a_checkpoint_follows_a_task_to_its_next_attempt(pool: str, tmp_path: Path) -> None:
    script = tmp_path / "count.sh"
    script.write_text('c="$ORCH_CHECKPOINT_DIR/step"; s=$(cat "$c" 2>/dev/null || echo 0)\n'
                      'while [ "$s" -lt 12 ]; do s=$((s+1)); echo "$s" > "$c.tmp" && mv "$c.tmp" "$c";\n'
                      '  echo "step $s attempt $ORCH_TASK_ATTEMPT"; sleep 1; done\n')
    lost_node = victim()
    tasks = [{"id": "hold", "command": "sleep 10"}]  # keeps the head's node busy
    tasks.insert(lost_node, {"id": "count", "command": f"sh {script}"})  # the n-th task goes to node n
    jobs.submit(pool, {"id": "resumable", "max_retries": 1, "tasks": tasks})
    jobs.wait_state(pool, "resumable", "count", TaskState.RUNNING)
    time.sleep(6)
    assert tasks_of("resumable")["count"].node_id == str(lost_node)  # type: ignore[attr-defined]
    kill_node(lost_node)
    info = jobs.wait_job(pool, "resumable", timeout=120)
    assert info.task_counts.get("succeeded") == 2
    out = load_backend("ray").read_file(ref("resumable"), "count", "stdout")
    lines = out.data.decode().splitlines() if out else []
    resumed = [int(line.split()[1]) for line in lines if line.endswith("attempt 1")]
    assert resumed and resumed[0] > 3, f"the second attempt resumed from the saved step: {lines}"
    assert resumed[-1] == 12 and len(lines) <= 12, "at most one step redone"
