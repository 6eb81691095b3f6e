"""The Ray backend on a real local 2-node cluster: jobs, states, logs, cancel, retries, teardown."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray

from orchestrator import pools
from orchestrator.backend import load_backend
from orchestrator.backends.ray import local_cluster, pool_ops
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.errors import BackendUnavailableError, CapacityError, ConflictError
from orchestrator.model import JobRef, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.pool import PoolSpec
from tests.support import jobs

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
POOL = "testpool"


def submit(spec: dict, workdir: Path | None = None) -> None:
    jobs.submit(POOL, {**spec, "workdir": str(workdir) if workdir else None})


def ref(job_id: str) -> JobRef:
    return JobRef(POOL, job_id)


def wait_job(job_id: str, timeout: float = 60.0):
    return jobs.wait_job(POOL, job_id, timeout)


def wait_state(job_id: str, task_id: str, state: TaskState, timeout: float = 30.0) -> None:
    jobs.wait_state(POOL, job_id, task_id, state, timeout)


def test_pool_has_two_distinct_ray_nodes(pool_home: dict[str, str]) -> None:
    info = load_backend("ray").get_pool("testpool")
    assert info is not None and info.state == "ready"
    assert len({n.id for n in info.nodes}) == 2


def test_job_of_three_tasks_one_failing(pool_home: dict[str, str]) -> None:
    submit({"id": "three", "tasks": [
        {"id": "ok", "command": "echo out-$ORCH_TASK_ID; echo err >&2"},
        {"id": "bad", "command": "echo failing; exit 7"},
        {"id": "listed", "command": ["python3", "-c", "import os; print(os.environ['ORCH_JOB_ID'], os.getcwd())"]},
    ]})
    info = wait_job("three")
    assert info.state == "completed" and not info.all_succeeded
    tasks = {t.id: t for t in load_backend("ray").list_tasks(ref("three"))}
    assert tasks["ok"].state == TaskState.SUCCEEDED and tasks["ok"].exit_code == 0
    assert tasks["bad"].state == TaskState.FAILED and tasks["bad"].exit_code == 7
    assert all(t.started_at and t.ended_at and t.ended_at >= t.started_at for t in tasks.values())
    backend = load_backend("ray")
    assert backend.read_file(ref("three"), "ok", "stdout").data == b"out-ok\n"
    assert backend.read_file(ref("three"), "ok", "stderr").data == b"err\n"
    out = backend.read_file(ref("three"), "listed", "stdout").data.decode()
    assert out.startswith("three ") and out.rstrip().endswith("/listed/wd")


def test_more_tasks_than_slots_none_lost_and_spread(pool_home: dict[str, str]) -> None:
    submit({"id": "many", "tasks": [{"id": f"t{i}", "command": f"echo {i}"} for i in range(60)]})
    info = wait_job("many")
    assert info.task_counts == {"succeeded": 60}
    nodes = {t.node_id for t in load_backend("ray").list_tasks(ref("many"))}
    assert nodes == {"0", "1"}


def test_retries_wall_time_and_dependencies(pool_home: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    submit({"id": "rules", "tasks": [
        {"id": "flaky", "command": f"echo x >> {marker}; test $(wc -l < {marker}) -ge 2", "max_retries": 2},
        {"id": "slow", "command": "sleep 30", "max_wall_time": 1},
        {"id": "after-slow", "command": "echo never", "depends_on": ["slow"]},
        {"id": "after-flaky", "command": "echo fine", "depends_on": ["flaky"]},
    ]})
    wait_job("rules")
    tasks = {t.id: t for t in load_backend("ray").list_tasks(ref("rules"))}
    assert tasks["flaky"].state == TaskState.SUCCEEDED and tasks["flaky"].retries == 1
    assert tasks["slow"].state == TaskState.FAILED and "max_wall_time" in (tasks["slow"].error or "")
    assert tasks["after-slow"].state == TaskState.FAILED and "dependency" in (tasks["after-slow"].error or "")
    assert tasks["after-flaky"].state == TaskState.SUCCEEDED


def test_cancel_kills_the_whole_process_tree(pool_home: dict[str, str], tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    submit({"id": "sleepy", "tasks": [
        {"id": "tree", "command": f"sleep 300 & echo $! >> {pidfile}; echo $$ >> {pidfile}; wait"},
        {"id": "queued", "command": "sleep 300"},
        {"id": "queued2", "command": "sleep 300"},
    ]})
    wait_state("sleepy", "tree", TaskState.RUNNING)
    deadline = time.monotonic() + 10
    while (not pidfile.exists() or len(pidfile.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert all(psutil.pid_exists(p) for p in pids)
    load_backend("ray").cancel_job(ref("sleepy"))
    info = wait_job("sleepy", timeout=30)
    assert info.state == "cancelled" and info.task_counts == {"cancelled": 3}
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_resubmission_is_idempotent(pool_home: dict[str, str]) -> None:
    spec = {"id": "again", "tasks": [{"id": f"t{i}", "command": "true"} for i in range(5)]}
    submit(spec)
    report = jobs.submit(POOL, spec)
    assert report.submitted == 0 and report.already_present == 5
    assert wait_job("again").task_counts == {"succeeded": 5}


def test_a_deleted_job_leaves_no_files_and_its_id_starts_afresh(pool_home: dict[str, str]) -> None:
    spec = {"id": "reused", "tasks": [
        {"id": f"t{i}", "command": 'echo "{\\"step\\": 1, \\"loss\\": 1}" >> "$ORCH_METRICS_FILE"'} for i in range(4)]}
    backend = load_backend("ray")
    submit(spec)
    assert wait_job("reused").task_counts == {"succeeded": 4}
    assert backend.read_file(ref("reused"), "t0", "metrics").data.count(b"\n") == 1
    manager = pool_ops.get_manager(POOL)
    roots = [Path(ray.get(manager.node_root.remote(node))) for node in (0, 1)]
    assert any((root / "jobs" / "reused").is_dir() for root in roots)
    backend.delete_job(ref("reused"))
    deadline = time.monotonic() + 20
    while any(root.joinpath("jobs", "reused").exists() or any(root.glob("trash/*")) for root in roots) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(root.joinpath("jobs", "reused").exists() for root in roots), "moved aside at once"
    assert not any(any(root.glob("trash/*")) for root in roots), "then removed by idle nodes"
    submit(spec)
    assert wait_job("reused").task_counts == {"succeeded": 4}
    for task in ("t0", "t3"):
        assert backend.read_file(ref("reused"), task, "metrics").data.count(b"\n") == 1, "only this job's report"


def test_jobs_outlive_the_cli_and_logs_tail_from_another_process(pool_home: dict[str, str], tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("id: detached\npool: testpool\nworkdir: null\ntasks:\n"
                   "  - {id: a, command: 'sleep 1; echo first'}\n  - {id: b, command: 'echo second; exit 3'}\n")
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    add = subprocess.run([sys.executable, "-m", "orchestrator", "jobs", "add", str(job)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stderr
    tail = subprocess.run([sys.executable, "-m", "orchestrator", "logs", "--tail"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "[a] first" in tail.stdout and "[b] second" in tail.stdout
    listed = subprocess.run([sys.executable, "-m", "orchestrator", "jobs", "list", "-o", "json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert '"detached"' in listed.stdout


def test_following_many_short_tasks_reads_every_line_in_batches(pool_home: dict[str, str]) -> None:
    from orchestrator.follow import follow_all

    submit({"id": "chatty", "tasks": [{"id": f"c{i}", "command": f"echo first-{i}; echo second-{i}"}
                                      for i in range(300)]})
    backend = load_backend("ray")
    lines = list(follow_all(backend, ref("chatty")))
    assert sorted(lines) == sorted(f"[c{i}] {word}-{i}" for i in range(300) for word in ("first", "second"))
    assert backend.task_states(ref("chatty")) == {t.id: t.state for t in backend.list_tasks(ref("chatty"))}
    chunks = backend.read_files(ref("chatty"), [("c0", "stdout", 0), ("c1", "stdout", 6), ("none", "stdout", 0)])
    assert [c.data if c else None for c in chunks] == [b"first-0\nsecond-0\n", b"first-1\nsecond-1\n"[6:], None]


def test_wait_job_answers_at_its_timeout_or_as_the_job_ends(pool_home: dict[str, str]) -> None:
    backend = load_backend("ray")
    submit({"id": "waited", "tasks": [{"id": "s", "command": "sleep 60"}]})
    wait_state("waited", "s", TaskState.RUNNING)
    info = backend.wait_job(ref("waited"), timeout=0.2)
    assert info is not None and info.state == "active"
    backend.cancel_job(ref("waited"))
    info = backend.wait_job(ref("waited"), timeout=60)
    assert info is not None and info.state == "cancelled"
    assert backend.wait_job(ref("no-such-job"), timeout=0.1) is None


def test_many_followers_waiting_on_a_job_never_hold_up_the_pool_manager(pool_home: dict[str, str]) -> None:
    manager = pool_ops.get_manager(POOL)
    assert manager is not None
    submit({"id": "watched", "tasks": [{"id": "s", "command": "sleep 60"}]})
    wait_state("watched", "s", TaskState.RUNNING)
    waits = [manager.wait_job.remote("watched", 25.0) for _ in range(100)]  # more than any thread pool
    try:
        started = time.monotonic()
        submit({"id": "meanwhile", "tasks": [{"id": "t", "command": "true"}]})
        info = wait_job("meanwhile", timeout=15)  # reports and reads are answered while 100 calls wait
        assert info.task_counts == {"succeeded": 1}
        # a manager whose threads all wait answers the submission only as waits time out (25 s)
        assert time.monotonic() - started < 20, "the submission waited for the followers"
    finally:
        load_backend("ray").cancel_job(ref("watched"))
    states = {info.state for info in ray.get(waits, timeout=60)}  # each answers as the job ends
    assert states == {"cancelled"}


def test_jobs_add_tail_exit_code_is_the_job_outcome(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    for name, command, code in (("good", "echo fine", 0), ("worse", "exit 4", 1)):
        job = tmp_path / f"{name}.yaml"
        job.write_text(f"id: {name}\npool: testpool\nworkdir: null\ntasks: [{{command: '{command}'}}]\n")
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "jobs", "add", str(job), "--tail"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, proc.stderr


def test_workdir_snapshot_makes_relative_paths_work(pool_home: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "hello.sh").write_text("echo from-workdir\n")
    submit({"id": "wd", "tasks": [{"id": "rel", "command": "sh scripts/hello.sh"}]}, workdir=tmp_path)
    wait_job("wd")
    assert load_backend("ray").read_file(ref("wd"), "rel", "stdout").data == b"from-workdir\n"


def test_pool_delete_refuses_while_busy(pool_home: dict[str, str]) -> None:
    submit({"id": "busy", "tasks": [{"id": "s", "command": "sleep 60"}]})
    wait_state("busy", "s", TaskState.RUNNING)
    with pytest.raises(ConflictError):
        pools.delete_pool("testpool")
    load_backend("ray").cancel_job(ref("busy"))
    wait_job("busy")


def test_unsatisfiable_pool_on_existing_cluster_says_what_is_missing(pool_home: dict[str, str]) -> None:
    cluster = ClusterRecord.of(pool_records.require("testpool"))
    spec = PoolSpec.model_validate({"id": "toobig", "nodes": 3, "cpus_per_node": 1,
                                    "ray": {"address": cluster.address, "auth_token_file": cluster.token_file,
                                            "startup_timeout": 3}})
    with pytest.raises(CapacityError) as info:
        pools.create_pool(spec)
    assert "3 distinct node(s)" in str(info.value) and "alive node(s)" in str(info.value)
    assert pool_records.load("toobig") is not None
    pool_records.remove("toobig")


def test_unreachable_address_fails_fast(tmp_path: Path) -> None:
    port = local_cluster.free_port()
    spec = PoolSpec.model_validate({"id": "ghost", "ray": {"address": f"127.0.0.1:{port}"}})
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        pools.create_pool(spec)
    assert time.monotonic() - started < 15
    assert "does not answer" in str(info.value)
    assert pool_records.load("ghost") is None, "a create that recorded nothing to clean up leaves no record"


def test_pool_delete_leaves_no_process(tmp_path: Path) -> None:
    pools.create_pool(PoolSpec.model_validate({"id": "shortlived", "nodes": 2}))
    record = ClusterRecord.of(pool_records.require("shortlived"))
    assert local_cluster.cluster_processes(record.node_marks())
    jobs.submit("shortlived", {"id": "bg", "tasks": [{"command": "sleep 120"}]})
    time.sleep(1)
    pools.delete_pool("shortlived", force=True)
    assert local_cluster.cluster_processes(record.node_marks()) == []
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if "sleep 120" in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == []
    assert pool_records.load("shortlived") is None


def test_stop_tasks_marks_them_stopped_not_failed(pool_home: dict[str, str]) -> None:
    submit({"id": "stopme", "tasks": [{"id": "run", "command": "sleep 60"}, {"id": "wait", "command": "sleep 60"},
                                      {"id": "later", "command": "sleep 60"}]})
    wait_state("stopme", "run", TaskState.RUNNING)
    load_backend("ray").stop_tasks(ref("stopme"), ["run", "wait", "later"])
    info = wait_job("stopme")
    assert info.task_counts == {"stopped": 3} and info.all_succeeded


def test_max_concurrent_trials_caps_tasks_in_flight(pool_home: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "overlap"
    command = f"echo start $(date +%s.%N) >> {log}; sleep 0.3; echo end $(date +%s.%N) >> {log}"
    submit({"id": "capped", "tasks": [{"id": "t", "command": command, "search_space": {"i": {"choice": [1, 2, 3, 4]}},
                                       "limits": {"max_concurrent_trials": 1}}]})
    assert wait_job("capped").task_counts == {"succeeded": 4}
    events = sorted((float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    depth = peak = 0
    for _, kind in events:
        depth += 1 if kind == "start" else -1
        peak = max(peak, depth)
    assert peak == 1


def test_pool_resize_adds_and_removes_nodes(tmp_path: Path) -> None:
    backend = load_backend("ray")
    pools.create_pool(PoolSpec.model_validate({"id": "elastic", "nodes": 1}))
    try:
        assert len(pools.resize_pool("elastic", 2).nodes) == 2
        assert pool_records.require("elastic").pool_spec().nodes.dedicated == 2
        jobs.submit("elastic", {"id": "spread", "tasks": [{"command": "true"}] * 1 +
                                [{"id": f"x{i}", "command": "sleep 0.2"} for i in range(6)]})
        jobs.wait_job("elastic", "spread")
        assert {t.node_id for t in backend.list_tasks(JobRef("elastic", "spread"))} == {"0", "1"}
        assert len(pools.resize_pool("elastic", 1).nodes) == 1
        assert len(ClusterRecord.of(pool_records.require("elastic")).node_marks()) == 1
    finally:
        pools.delete_pool("elastic", force=True)
