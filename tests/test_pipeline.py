"""The core pipeline against an in-memory backend: what submission and the pool and job verbs ask
of a backend, in which order, and what they record locally. Fast: no engine runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import jobs, pools
from orchestrator.backend import Capability
from orchestrator.errors import (
    BackendError,
    ConflictError,
    NotFoundError,
    UnsupportedError,
)
from orchestrator.model import JobRef, TaskState
from orchestrator.records import job_index, pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from tests.support.memory_backend import MemoryBackend

POOL = PoolSpec.model_validate({"id": "mem", "nodes": 2, "cpus_per_node": 2})
ADAPTIVE = {"id": "trial", "command": "train --x {{x}}", "search_space": {"x": {"uniform": [0, 1]}},
            "sampling": "random", "objective": {"metric": "acc", "goal": "maximize"},
            "limits": {"max_total_trials": 3, "timeout": "1h"}}


def job(**fields: object) -> JobSpec:
    return JobSpec.model_validate({"id": "j", "pool": "mem", "workdir": None, **fields})


@pytest.fixture
def backend() -> MemoryBackend:
    memory = MemoryBackend()
    pools.create_pool(POOL, backend=memory)
    return memory


def test_create_pool_records_before_and_after_and_is_idempotent(backend: MemoryBackend) -> None:
    record = pool_records.require("mem")
    assert record.state == "ready" and record.pool_spec() == POOL
    assert pools.create_pool(POOL, backend=backend).state == "ready"
    with pytest.raises(ConflictError, match="other settings"):
        pools.create_pool(POOL.model_copy(update={"cpus_per_node": 1.0}), backend=backend)


def test_a_failed_first_create_leaves_no_record_unless_the_backend_kept_state(tmp_path: Path) -> None:
    spec = PoolSpec.model_validate({"id": "broken"})
    with pytest.raises(BackendError):
        pools.create_pool(spec, backend=MemoryBackend(fail_create=BackendError("no capacity")))
    assert pool_records.load("broken") is None
    with pytest.raises(BackendError):
        pools.create_pool(spec, backend=MemoryBackend(fail_create=BackendError("half up"), engine={"pid": 1}))
    kept = pool_records.require("broken")
    assert kept.state == "creating" and kept.engine == {"pid": 1}  # something to clean up: `pool delete`


def test_resize_and_delete_keep_the_records_true(backend: MemoryBackend) -> None:
    submit_job(job(tasks=[{"command": "true"}]), config_dir=Path.cwd(), backend=backend)
    assert len(pools.resize_pool("mem", 3, backend=backend).nodes) == 3
    assert pool_records.require("mem").pool_spec().nodes.dedicated == 3
    pools.delete_pool("mem", backend=backend)
    assert pool_records.load("mem") is None and job_index.lookup("j") is None


def test_submission_indexes_the_job_then_submits_a_sealed_job(backend: MemoryBackend) -> None:
    report = submit_job(job(tasks=[{"id": "a", "command": "true"}, {"id": "b", "command": "true",
                                                                      "depends_on": ["a"]}]),
                        config_dir=Path.cwd(), backend=backend)
    assert (report.submitted, report.already_present) == (2, 0)
    (name, launch), = backend.calls[1:]
    assert name == "submit" and launch.seal and not launch.controlled and launch.uses_dependencies
    entry = job_index.lookup("j")
    assert entry is not None and (entry.pool_id, entry.backend, entry.kind) == ("mem", "ray", "job")
    again = submit_job(job(tasks=[{"id": "a", "command": "true"}, {"id": "b", "command": "true",
                                                                     "depends_on": ["a"]}]),
                       config_dir=Path.cwd(), backend=backend)
    assert (again.submitted, again.already_present) == (0, 2)


def test_an_adaptive_sweep_is_submitted_unsealed_then_its_controller_starts(backend: MemoryBackend) -> None:
    submit_job(job(tasks=[ADAPTIVE]), config_dir=Path.cwd(), backend=backend)
    assert [name for name, _ in backend.calls] == ["ensure_pool", "submit", "start_sweep"]
    launch, spec, settings = backend.sweeps[0]
    assert launch.controlled and not launch.seal and spec.id == "j"
    assert (settings.pool_nodes, settings.default_concurrency) == (2, 4)  # 2 nodes x 2 slots
    assert len(backend.jobs[JobRef("mem", "j")].tasks) == 3
    entry = job_index.lookup("j")
    assert entry is not None and entry.kind == "sweep" and entry.trials == 3
    assert entry.objective == {"metric": "acc", "goal": "maximize"}


def test_a_backend_without_a_sweep_host_refuses_adaptive_sweeps_before_creating_anything() -> None:
    plain = MemoryBackend(capabilities=frozenset())
    pools.create_pool(POOL, backend=plain)
    with pytest.raises(UnsupportedError, match="the memory backend has no sweep host") as refused:
        submit_job(job(tasks=[ADAPTIVE]), config_dir=Path.cwd(), backend=plain)
    assert refused.value.exit_code == 2
    assert [name for name, _ in plain.calls] == ["ensure_pool"] and job_index.lookup("j") is None


def test_inputs_are_checked_and_made_absolute_before_submission(backend: MemoryBackend, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    submit_job(job(inputs=[{"path": "data", "to": "in"}], tasks=[{"command": "true"}]), config_dir=tmp_path,
               backend=backend)
    launch = backend.calls[-1][1]
    assert launch.inputs[0].path == (tmp_path / "data").resolve() and launch.inputs[0].to == "in"
    with pytest.raises(Exception, match="does not exist") as missing:
        submit_job(job(id="k", inputs=[{"path": "nope", "to": "x"}], tasks=[{"command": "true"}]),
                   config_dir=tmp_path, backend=backend)
    assert missing.value.where.key_path == "inputs[0].path"  # type: ignore[attr-defined]
    assert job_index.lookup("k") is None


def test_the_workdir_snapshot_travels_with_the_job(backend: MemoryBackend, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    submit_job(job(workdir=str(tmp_path), tasks=[{"command": "python train.py"}]), config_dir=Path.cwd(),
               backend=backend)
    launch = backend.calls[-1][1]
    assert launch.workdir is not None and len(launch.workdir.digest) == 64


def test_jobs_are_located_through_the_index_or_found_on_a_pool_and_indexed(
        backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "load_backend", lambda name, config_dir=None: backend)
    submit_job(job(tasks=[{"id": "a", "command": "true"}]), config_dir=Path.cwd(), backend=backend)
    assert jobs.locate("j").ref == JobRef("mem", "j")
    job_index.forget("j")
    assert jobs.locate("j").ref == JobRef("mem", "j") and job_index.lookup("j") is not None
    job_index.forget("j")
    assert [info.id for info in jobs.list_jobs()] == ["j"] and job_index.lookup("j") is not None
    with pytest.raises(NotFoundError):
        jobs.locate("nobody")
    backend.finish(JobRef("mem", "j"), "a", TaskState.SUCCEEDED, b"hi\n")
    handle, info = jobs.existing_job("j")
    assert info.finished and handle.backend.read_file(handle.ref, "a", "stdout", offset=1).data == b"i\n"
    jobs.delete_job(handle)
    assert job_index.lookup("j") is None and backend.get_job(JobRef("mem", "j")) is None


def test_capabilities_are_asked_for_not_probed(backend: MemoryBackend) -> None:
    with pytest.raises(UnsupportedError, match="the memory backend has no data store"):
        from orchestrator.backend import DataStoreHost, capability

        capability(backend, DataStoreHost)
    assert Capability.SWEEP_HOST in backend.capabilities


def test_down_removes_jobs_then_the_pool(backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pools, "load_backend", lambda name, config_dir=None: backend)
    submit_job(job(tasks=[{"command": "true"}]), config_dir=Path.cwd(), backend=backend)
    removal = pools.plan_removal(POOL, storage=True)
    assert removal.items() == ["job j", "pool mem"]  # no storage teardown: the backend keeps none
    assert pools.remove(removal) == ["job j", "pool mem"]
    assert pool_records.load("mem") is None and job_index.entries() == []


def test_another_spec_under_an_existing_job_id_is_a_conflict_that_names_the_tasks(backend: MemoryBackend) -> None:
    first = job(tasks=[{"id": "a", "command": "echo a"}, {"id": "b", "command": "echo b"}])
    submit_job(first, config_dir=Path.cwd(), backend=backend)
    again = submit_job(first, config_dir=Path.cwd(), backend=backend)
    assert (again.submitted, again.already_present) == (0, 2)  # the same spec: idempotent
    changed = job(tasks=[{"id": "a", "command": "echo A"}, {"id": "b", "command": "echo b"}])
    with pytest.raises(ConflictError, match="other tasks under the same ids: a\n") as refused:
        submit_job(changed, config_dir=Path.cwd(), backend=backend)
    assert refused.value.exit_code == 5 and "new id" in (refused.value.hint or "")
    grown = job(tasks=[{"id": "a", "command": "echo a"}, {"id": "b", "command": "echo b"},
                       {"id": "c", "command": "echo c"}])
    with pytest.raises(ConflictError, match="adds 1 task") as refused:
        submit_job(grown, config_dir=Path.cwd(), backend=backend)
    assert "--append" in (refused.value.hint or "")
    appended = submit_job(grown, config_dir=Path.cwd(), backend=backend, append=True)
    assert (appended.submitted, appended.already_present) == (1, 2)
    assert submit_job(grown, config_dir=Path.cwd(), backend=backend).already_present == 3  # now the job's spec
    for task_id in "abc":
        backend.finish(JobRef("mem", "j"), task_id, TaskState.SUCCEEDED)
    more = job(tasks=[{"id": "a", "command": "echo a"}, {"id": "b", "command": "echo b"},
                      {"id": "c", "command": "echo c"}, {"id": "d", "command": "echo d"}])
    with pytest.raises(ConflictError, match="has completed"):
        submit_job(more, config_dir=Path.cwd(), backend=backend, append=True)
