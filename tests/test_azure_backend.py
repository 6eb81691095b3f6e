"""The Azure backend end to end against the local Batch service and Azurite, through the real SDKs."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from orchestrator import pools, workdir
from orchestrator.backends.azure import checkpoints
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.retries import RetryPolicy
from orchestrator.errors import BackendError, ConflictError, InterruptedByUser
from orchestrator.model import JobRef, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from orchestrator.tail import Follower, follow
from tests.batch_service import (
    BatchService,
    ServiceSettings,
    quick_autoscale,
    start_batch_service,
)
from tests.support.azurite import Azurite, start_azurite

pytestmark = pytest.mark.slow
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ORCH_HOME for the module: its pools outlive single tests."""
    path = tmp_path_factory.mktemp("orch-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORCH_HOME", str(path))
        yield path


@pytest.fixture(autouse=True)
def orch_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Replaces conftest's per-test ORCH_HOME with the module's."""
    monkeypatch.setenv("ORCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchService]:
    with start_batch_service(tmp_path_factory.mktemp("batch")) as service:
        yield service


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running


@pytest.fixture(scope="module")
def credentials(batch: BatchService, azurite: Azurite) -> Credentials:
    return Credentials.model_validate({"batch": {"account": batch.account, "url": batch.url, "key": batch.key},
                                       "storage": {"connection_string": azurite.connection_string}})


@pytest.fixture(scope="module")
def backend(home: Path, credentials: Credentials) -> AzureBackend:
    return AzureBackend(credentials=credentials, policy=RetryPolicy(base=0.01, cap=0.2))


def pool_spec(pool_id: str, nodes: int = 2, **azure: object) -> PoolSpec:
    return PoolSpec.model_validate({"id": pool_id, "backend": "azure", "nodes": nodes,
                                    "azure": {"vm_size": "D2s_v5", **azure}})


@pytest.fixture(scope="module")
def pool(backend: AzureBackend) -> str:
    steps: list[str] = []
    info = pools.create_pool(pool_spec("work"), progress=steps.append, backend=backend)
    assert info.state == "ready" and len(info.nodes) == 2 and info.free_slots == 4
    assert steps[-1] == "allocation steady: 2/2 nodes (2 idle)"
    assert pools.create_pool(pool_spec("work"), backend=backend).id == "work"  # idempotent
    with pytest.raises(ConflictError):
        pools.create_pool(pool_spec("work", node_fill="pack"), backend=backend)
    return "work"


def submit(backend: AzureBackend, job: dict[str, object], workdir_of: Path | None = None):  # type: ignore[no-untyped-def]
    spec = JobSpec.model_validate({"workdir": str(workdir_of) if workdir_of else None, **job})
    return submit_job(spec, config_dir=Path.cwd(), backend=backend)


def ref(job_id: str, pool: str = "work") -> JobRef:
    return JobRef(pool, job_id)


def finished_job(backend: AzureBackend, job_id: str, pool: str = "work"):  # type: ignore[no-untyped-def]
    return wait_for(lambda: (info := backend.get_job(ref(job_id, pool))) is not None and info.finished and info,
                    f"job {job_id}")


def test_job_states_exit_codes_logs_metrics_and_outputs(backend: AzureBackend, pool: str, tmp_path: Path,
                                                        azurite: Azurite) -> None:
    (tmp_path / "data.txt").write_text("from the workdir\n")
    digest = workdir.snapshot(tmp_path).digest
    report = submit(backend, {"id": "three", "pool": pool, "tasks": [
        {"id": "ok", "command": "cat data.txt; echo '{\"acc\": 0.9}' >> \"$ORCH_METRICS_FILE\"; echo m > model.bin",
         "output_files": ["*.bin"]},
        {"id": "fails", "command": ["sh", "-c", "echo broken >&2; exit 3"]},
        {"id": "after", "command": "echo after $ORCH_TASK_ID", "depends_on": ["ok"]}]}, tmp_path)
    assert (report.submitted, report.already_present, dict(report.failed)) == (3, 0, {})
    job = finished_job(backend, "three")
    assert (job.state, dict(job.task_counts)) == ("completed", {"succeeded": 2, "failed": 1})
    tasks = {t.id: t for t in backend.list_tasks(ref("three"))}
    assert {t: (i.state, i.exit_code) for t, i in tasks.items()} == {
        "ok": (TaskState.SUCCEEDED, 0), "fails": (TaskState.FAILED, 3), "after": (TaskState.SUCCEEDED, 0)}
    assert tasks["ok"].node_id and tasks["after"].started_at >= tasks["ok"].ended_at
    assert backend.read_file(ref("three"), "ok", "stdout").data == b"from the workdir\n"
    assert backend.read_file(ref("three"), "ok", "stdout", offset=5).data == b"the workdir\n"
    assert backend.read_file(ref("three"), "fails", "stderr").data == b"broken\n"
    assert backend.read_file(ref("three"), "ok", "metrics").data == b'{"acc": 0.9}\n'
    assert backend.read_file(ref("three"), "after", "stdout").data == b"after after\n"
    data = backend.data_store(pool_spec("work"))
    blobs = {entry.name for entry in data.list("jobs/three/")}
    assert {"jobs/three/ok/outputs/model.bin", "jobs/three/ok/metrics.jsonl", "jobs/three/fails/stderr.txt"} <= blobs
    assert data.store.get(data.location, "jobs/three/ok/outputs/model.bin") == b"m\n"
    helper = hashlib.sha256(checkpoints.helper_source()).hexdigest()  # the checkpoint helper, also by content
    assert sorted(e.name for e in data.list("inputs/")) == sorted([f"inputs/{digest}.zip", f"inputs/{helper}.py"])


def test_logs_are_followed_by_range_and_fall_back_to_blob_copies(backend: AzureBackend, batch: BatchService,
                                                                 pool: str) -> None:
    submit(backend, {"id": "talker", "pool": pool, "tasks": [
        {"id": "t", "command": "for i in 1 2 3; do echo line $i; sleep 0.3; done; printf 'h\\303'; sleep 0.3; printf '\\251\\n'"}]})
    chunks = list(follow(lambda offset: backend.read_file(ref("talker"), "t", "stdout", offset=offset),
                         lambda: backend.get_job(ref("talker")).finished, backoff=None))
    assert "".join(chunks) == "line 1\nline 2\nline 3\nhé\n"
    node_dir = next((batch.root_dir / "nodes").glob("*/workitems/talker/job-1/t"))
    shutil.rmtree(node_dir)  # the node is gone: what remains is the copy uploaded when the task ended
    assert backend.read_file(ref("talker"), "t", "stdout").data == b"line 1\nline 2\nline 3\nh\xc3\xa9\n"
    assert backend.read_file(ref("talker"), "t", "stdout", offset=7).data.startswith(b"line 2")


def test_idle_polls_cost_one_request_and_missing_files_are_waited_for(backend: AzureBackend, batch: BatchService,
                                                                      pool: str) -> None:
    submit(backend, {"id": "idle", "pool": pool, "tasks": [
        {"id": "sleeper", "command": "echo started; sleep 300"},
        {"id": "blocked", "command": "true", "depends_on": ["sleeper"]}]})
    assert backend.read_file(ref("idle"), "blocked", "stdout") is None  # not started: waited for, no blob lookup
    follower = Follower(lambda offset: backend.read_file(ref("idle"), "sleeper", "stdout", offset=offset), lambda: False)
    assert wait_for(follower.poll, "the first line") == "started\n"
    batch.clear_requests()
    for _ in range(5):
        assert follower.poll() == ""
    paths = [record.path for record in batch.requests()]
    assert len(paths) == 5 and all(path.endswith("/files/stdout.txt") for path in paths)
    assert not [r for r in batch.requests(path="/files/") if r.method == "GET"]  # idle: properties only
    backend.cancel_job(ref("idle"))
    job = finished_job(backend, "idle")
    assert job.state == "cancelled" and dict(job.task_counts) == {"cancelled": 2}


def test_failing_start_task_is_reported_with_its_stderr(backend: AzureBackend) -> None:
    spec = pool_spec("badstart", nodes=1).model_copy(update={"start_task": PoolSpec.model_validate(
        {"id": "x", "start_task": "echo cannot mount /data >&2; exit 7"}).start_task})
    with pytest.raises(BackendError) as raised:
        pools.create_pool(spec, backend=backend)
    text = str(raised.value)
    assert "start task failed" in text and "exit code 7" in text and "cannot mount /data" in text
    pools.delete_pool("badstart", backend=backend)
    assert backend.get_pool("badstart") is None


def test_multi_instance_task_runs_the_launcher_with_the_host_list(backend: AzureBackend, pool: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mpirun").write_text('#!/bin/sh\necho "mpirun $*"\necho "ips=$ORCH_NODE_IPS hosts=$AZ_BATCH_HOST_LIST"\n')
    (fake / "mpirun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    pools.create_pool(pool_spec("mpipool").model_copy(update={"max_tasks_per_node": 1}), backend=backend)
    submit(backend, {"id": "allreduce", "pool": "mpipool", "tasks": [
        {"id": "train", "command": ["python3", "train.py"], "distributed": {"launcher": "mpi", "nodes": 2}}]})
    job = finished_job(backend, "allreduce", "mpipool")
    assert dict(job.task_counts) == {"succeeded": 1}
    launcher_line, env_line = backend.read_file(ref("allreduce", "mpipool"), "train",
                                                "stdout").data.decode().splitlines()
    ips, hosts = (part.split("=")[1].split(",") for part in env_line.split())
    assert len(set(hosts)) == 2 and sorted(ips) == sorted(hosts)  # the primary first, then the others
    assert launcher_line.startswith("mpirun ") and launcher_line.endswith("python3 train.py")
    assert f"{ips[0]}:1,{ips[1]}:1" in launcher_line
    subtasks = list(backend.accounts.for_pool("mpipool").batch.client.list_subtasks("allreduce", "train"))
    assert [sub.id for sub in subtasks] == [1] and subtasks[0].node_info.node_id  # the instance but the primary
    held = {span.node_id for span in backend.usage("mpipool") if span.task_id == "train"}
    assert len(held) == 2  # the cost ledger charges the task for both of its nodes
    pools.delete_pool("mpipool", backend=backend)


def test_transient_faults_are_retried_and_every_task_is_accounted_for(backend: AzureBackend, batch: BatchService,
                                                                      pool: str) -> None:
    batch.clear_requests()
    batch.inject_fault("429", method="GET", path="^/pools/work$", count=1, retry_after=1)
    batch.inject_fault("500", method="GET", path="^/pools/work$", count=1)
    batch.inject_fault("503", method="GET", path="^/pools/work$", count=1)
    batch.inject_fault("drop", method="GET", path="^/pools/work$", count=1)
    try:
        assert backend.get_pool("work").id == "work"
    finally:
        batch.clear_faults()
    assert [(r.status, r.fault) for r in batch.requests(path="^/pools/work$")] == [
        (429, "429"), (500, "500"), (503, "503"), (0, "drop"), (200, None)]
    batch.inject_fault("500", method="POST", path="/addtaskcollection$", count=1, timing="after")
    batch.inject_fault("drop", method="POST", path="/addtaskcollection$", count=1, timing="after")
    try:
        report = submit(backend, {"id": "replayed", "pool": pool, "tasks": [
            {"id": f"r{i}", "command": "true"} for i in range(5)]})
    finally:
        batch.clear_faults()
    statuses = [r.status for r in batch.requests(path="/jobs/replayed/addtaskcollection$")]
    assert statuses == [500, 0, 200]
    assert (report.submitted, report.already_present, dict(report.failed)) == (5, 0, {})
    assert sorted(t.id for t in backend.list_tasks(ref("replayed"))) == [f"r{i}" for i in range(5)]
    finished_job(backend, "replayed")
    with pytest.raises(ConflictError, match="has completed; this file adds 1 task"):  # refused before any call
        submit(backend, {"id": "replayed", "pool": pool, "tasks": [{"id": f"r{i}", "command": "true"} for i in range(6)]})


def test_too_large_collections_are_split(backend: AzureBackend, batch: BatchService, pool: str) -> None:
    batch.settings.max_body_bytes = 20_000
    try:
        report = submit(backend, {"id": "bulky", "pool": pool, "env": {"PAD": "x" * 2000},
                                  "tasks": [{"id": f"b{i}", "command": "true"} for i in range(12)]})
    finally:
        batch.settings.max_body_bytes = ServiceSettings().max_body_bytes
    assert (report.submitted, dict(report.failed)) == (12, {})
    statuses = [r.status for r in batch.requests(path="/jobs/bulky/addtaskcollection$")]
    assert statuses.count(413) >= 1 and statuses.count(200) >= 2
    assert len(backend.list_tasks(ref("bulky"))) == 12


def test_ten_thousand_trial_sweep_with_a_fifth_of_requests_failing_lands_exactly(
        backend: AzureBackend, batch: BatchService) -> None:
    pools.create_pool(pool_spec("parked", autoscale={"formula": "$TargetDedicatedNodes = 0;"}), backend=backend)
    faults = [("500", 0.07, "after"), ("503", 0.07, "before"), ("drop", 0.04, "before"), ("429", 0.03, "before")]
    for seed, (kind, probability, timing) in enumerate(faults):
        batch.inject_fault(kind, method="POST", path="/addtaskcollection$", probability=probability, seed=seed,
                           timing=timing, retry_after=1)  # type: ignore[arg-type]
    batch.clear_requests()
    try:
        report = submit(backend, {"id": "sweep10k", "pool": "parked", "tasks": [
            {"id": "trial", "command": "echo {{0}}", "task_factory": {"parametric_sweep": {
                "product": [{"start": 0, "stop": 10_000, "step": 1}]}}}]})
    finally:
        batch.clear_faults()
    assert (report.submitted, report.already_present, dict(report.failed)) == (10_000, 0, {})
    statuses = [r.status for r in batch.requests(path="/addtaskcollection$")]
    assert statuses.count(200) == 100 and len(statuses) - 100 >= 0.1 * len(statuses)
    order = [(r.method, r.path.rsplit("/", 1)[-1]) for r in batch.requests(path="^/jobs")]
    assert order.index(("POST", "jobs")) < order.index(("POST", "addtaskcollection"))
    assert order[-1] == ("PATCH", "sweep10k") and order.count(("PATCH", "sweep10k")) == 1  # sealed last
    ids = [t.id for t in backend.list_tasks(ref("sweep10k", "parked"))]
    assert len(ids) == len(set(ids)) == 10_000 and ids[0] == "trial-00000"
    backend.delete_job(ref("sweep10k", "parked"))
    pools.delete_pool("parked", backend=backend)


def test_pending_tasks_autoscale_adds_nodes_for_queued_tasks(backend: AzureBackend, batch: BatchService) -> None:
    with quick_autoscale(batch.settings, 0.2):
        spec = pool_spec("elastic", autoscale={"scenario": "pending_tasks", "min_nodes": 0, "max_nodes": 3})
        assert pools.create_pool(spec, backend=backend).nodes == ()
        submit(backend, {"id": "queued", "pool": "elastic", "tasks": [
            {"id": f"q{i}", "command": "sleep 1"} for i in range(3)]})
        grown = wait_for(lambda: len((info := backend.get_pool("elastic")).nodes) == 2 and info, "two nodes")
        assert "autoscale" in grown.detail  # 3 pending tasks, 2 slots per node: 2 nodes
        assert dict(finished_job(backend, "queued", "elastic").task_counts) == {"succeeded": 3}
        wait_for(lambda: backend.get_pool("elastic").nodes == (), "the pool to shrink back to no nodes")
    pools.delete_pool("elastic", backend=backend)


def test_ctrl_c_while_waiting_says_how_to_resume_and_resizing_waits(backend: AzureBackend, pool: str) -> None:
    def interrupt(step: str) -> None:
        if step.startswith("allocation"):
            raise KeyboardInterrupt

    with pytest.raises(InterruptedByUser) as stopped:
        pools.create_pool(pool_spec("resumable", nodes=1), progress=interrupt, backend=backend)
    assert stopped.value.exit_code == 130 and "`orch pool create` again" in str(stopped.value)
    assert pools.create_pool(pool_spec("resumable", nodes=1), backend=backend).state == "ready"
    assert len(pools.resize_pool("resumable", 2, backend=backend).nodes) == 2
    assert len(pools.resize_pool("resumable", 1, backend=backend).nodes) == 1
    pools.delete_pool("resumable", backend=backend)


def test_stopped_tasks_end_stopped_and_busy_pools_are_not_deleted(backend: AzureBackend, pool: str) -> None:
    submit(backend, {"id": "sweepstop", "pool": pool, "tasks": [
        {"id": "t", "command": "sleep 300", "task_factory": {"repeat": 2}}]})
    wait_for(lambda: all(t.state == TaskState.RUNNING for t in backend.list_tasks(ref("sweepstop"))), "running trials")
    backend.stop_tasks(ref("sweepstop"), ["t-00000"])
    states = wait_for(lambda: (s := {t.id: t.state for t in backend.list_tasks(ref("sweepstop"))})["t-00000"]
                      == TaskState.STOPPED and s, "a stopped trial")
    assert states["t-00001"] == TaskState.RUNNING
    with pytest.raises(ConflictError) as busy:
        pools.delete_pool(pool, backend=backend)
    assert "running task" in str(busy.value)
    pools.delete_pool(pool, force=True, backend=backend)
    assert backend.get_pool(pool) is None and pool_records.load(pool) is None and pools.list_pools() == []
