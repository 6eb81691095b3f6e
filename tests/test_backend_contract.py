"""The backend contract suite: one set of tests every backend passes (``orchestrator.backend``).

Each test runs against every registered engine through ``Backend`` calls only: the real local
Ray cluster, and Azure through the real SDKs against the local Batch service and Azurite. A new
backend adds one entry to ``TARGETS`` (how to start it and a pool) and gets these tests for free.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import pools
from orchestrator.backend import (
    CAPABILITY_OF,
    Backend,
    Capability,
    CostLedger,
    load_backend,
    supports,
)
from orchestrator.backend import capability as as_capability
from orchestrator.errors import ConflictError, NotFoundError, UnsupportedError
from orchestrator.model import (
    JobInfo,
    JobLaunch,
    JobRef,
    Resources,
    TaskLaunch,
    TaskState,
)
from orchestrator.records import pool_records
from orchestrator.spec.pool import PoolSpec

pytestmark = pytest.mark.slow


@dataclass
class Target:
    backend: Backend
    pool: str
    home: str
    make_pool: Callable[[str], PoolSpec]

    def ref(self, job_id: str) -> JobRef:
        return JobRef(self.pool, job_id)

    def submit(self, job_id: str, tasks: list[TaskLaunch], **job: Any) -> Any:
        return self.backend.submit(JobLaunch(id=job_id, pool_id=self.pool, **job), tasks)

    def wait(self, job_id: str, timeout: float = 120.0) -> JobInfo:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.backend.get_job(self.ref(job_id))
            if info is not None and info.finished:
                return info
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish: {self.backend.get_job(self.ref(job_id))}")

    def wait_state(self, job_id: str, task_id: str, state: TaskState, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(t.id == task_id and t.state == state for t in self.backend.list_tasks(self.ref(job_id))):
                return
            time.sleep(0.2)
        raise AssertionError(f"{job_id}/{task_id} never reached {state}")

    def tasks(self, job_id: str) -> dict[str, Any]:
        return {task.id: task for task in self.backend.list_tasks(self.ref(job_id))}


def ray_target(request: pytest.FixtureRequest) -> Target:
    pool = request.getfixturevalue("ray_pool")
    return Target(load_backend("ray"), pool["pool"], pool["ORCH_HOME"],
                  lambda pool_id: PoolSpec.model_validate({"id": pool_id, "nodes": 1}))


def azure_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    from orchestrator.backends.azure.backend import AzureBackend
    from orchestrator.backends.azure.credentials import Credentials
    from orchestrator.backends.azure.retries import RetryPolicy
    from tests.batch_service import start_batch_service
    from tests.support.azurite import start_azurite

    factory = request.getfixturevalue("tmp_path_factory")
    home = str(factory.mktemp("contract-azure-home"))
    with start_batch_service(factory.mktemp("batch")) as batch, start_azurite(factory.mktemp("azurite")) as azurite, \
            pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORCH_HOME", home)
        credentials = Credentials.model_validate({
            "batch": {"account": batch.account, "url": batch.url, "key": batch.key},
            "storage": {"connection_string": azurite.connection_string}})
        backend = AzureBackend(credentials=credentials, policy=RetryPolicy(base=0.01, cap=0.2))

        def make(pool_id: str, nodes: int = 2) -> PoolSpec:
            return PoolSpec.model_validate({"id": pool_id, "backend": "azure", "nodes": nodes,
                                            "azure": {"vm_size": "D2s_v5"}})

        pools.create_pool(make("contract"), backend=backend)
        yield Target(backend, "contract", home, lambda pool_id: make(pool_id, 1))


TARGETS = {"ray": ray_target, "azure": azure_target}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    made = TARGETS[request.param](request)
    if isinstance(made, Target):
        yield made
    else:
        yield from made


@pytest.fixture(autouse=True)
def target_home(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_HOME", target.home)


def task(task_id: str, command: str, **fields: Any) -> TaskLaunch:
    return TaskLaunch(id=task_id, command=command, resources=Resources(cpus=0.5), **fields)


def test_declared_capabilities_are_implemented(target: Target) -> None:
    by_capability = {capability: kind for kind, capability in CAPABILITY_OF.items()}
    for capability in target.backend.capabilities:
        assert isinstance(capability, Capability)
        protocol = by_capability[capability]
        methods = [name for name in vars(protocol) if not name.startswith("_")]
        assert methods and all(callable(getattr(target.backend, name, None)) for name in methods), capability


def test_pool_lifecycle_is_idempotent_and_leaves_nothing(target: Target) -> None:
    spec = target.make_pool("lifecycle")
    first = pools.create_pool(spec, backend=target.backend)
    assert first.state == "ready" and len(first.nodes) == spec.nodes.total
    assert pools.create_pool(spec, backend=target.backend).id == "lifecycle"
    with pytest.raises(ConflictError):
        pools.create_pool(spec.model_copy(update={"max_tasks_per_node": 7}), backend=target.backend)
    assert target.backend.list_jobs("lifecycle") == []
    pools.delete_pool("lifecycle", backend=target.backend)
    assert target.backend.get_pool("lifecycle") is None and pool_records.load("lifecycle") is None


def test_submit_is_idempotent_and_accounts_for_every_task(target: Target) -> None:
    tasks = [task(f"t{i}", f"echo {i}") for i in range(4)]
    first = target.submit("idem", tasks, seal=False)
    assert (first.submitted, first.already_present, dict(first.failed)) == (4, 0, {})
    again = target.submit("idem", tasks + [task("t4", "echo 4")])
    assert (again.submitted, again.already_present, dict(again.failed)) == (1, 4, {})
    info = target.wait("idem")
    assert info.state == "completed" and dict(info.task_counts) == {"succeeded": 5} and info.all_succeeded
    assert [t.id for t in target.backend.list_tasks(target.ref("idem"))] == [f"t{i}" for i in range(5)]
    assert "idem" in [job.id for job in target.backend.list_jobs(target.pool)]


def test_the_backend_keeps_the_spec_digest_and_task_fingerprints(target: Target) -> None:
    tasks = [task("one", "echo 1"), task("two", "echo 2", max_retries=2)]
    target.submit("digest", tasks, spec_digest="first", seal=False)
    info = target.backend.get_job(target.ref("digest"))
    assert info is not None and info.spec_digest == "first"
    listed = {t.id: t.fingerprint for t in target.backend.list_tasks(target.ref("digest"))}
    assert listed == {"one": tasks[0].fingerprint, "two": tasks[1].fingerprint}
    target.submit("digest", tasks, spec_digest="second", seal=False)
    assert target.backend.get_job(target.ref("digest")).spec_digest == "second"  # type: ignore[union-attr]
    target.submit("digest", tasks, spec_digest="second")
    assert target.wait("digest").spec_digest == "second"


def test_failed_attempts_are_retried_within_max_retries(target: Target, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    target.submit("retry", [
        task("flaky", f"echo x >> {marker}; test $(wc -l < {marker}) -ge 2", max_retries=1),
        task("broken", "exit 3", max_retries=1)])
    target.wait("retry")
    tasks = target.tasks("retry")
    assert (tasks["flaky"].state, tasks["flaky"].retries) == (TaskState.SUCCEEDED, 1)
    assert (tasks["broken"].state, tasks["broken"].exit_code, tasks["broken"].retries) == (TaskState.FAILED, 3, 1)


def test_dependencies_order_tasks_and_a_failed_one_fails_its_dependents(target: Target) -> None:
    target.submit("deps", [
        task("first", "sleep 1; echo first"),
        task("second", "echo second", depends_on=("first",)),
        task("doomed", "exit 4"),
        task("never", "echo never", depends_on=("doomed",)),
        task("never-either", "echo never", depends_on=("never",))], uses_dependencies=True)
    info = target.wait("deps")
    assert info.state == "completed" and dict(info.task_counts) == {"succeeded": 2, "failed": 3}
    tasks = target.tasks("deps")
    assert tasks["second"].started_at >= tasks["first"].ended_at
    assert tasks["never"].state == TaskState.FAILED and "doomed" in (tasks["never"].error or "")
    assert tasks["never-either"].state == TaskState.FAILED and tasks["never-either"].started_at is None


def test_files_are_read_at_an_offset(target: Target) -> None:
    target.submit("files", [task("talk", "printf 'hello world\\n'; printf 'oops\\n' >&2")])
    target.wait("files")
    whole = target.backend.read_file(target.ref("files"), "talk", "stdout")
    assert whole is not None and whole.data == b"hello world\n" and whole.size == 12
    tail = target.backend.read_file(target.ref("files"), "talk", "stdout", offset=6)
    assert tail is not None and tail.data == b"world\n" and tail.size == 12
    err = target.backend.read_file(target.ref("files"), "talk", "stderr")
    assert err is not None and err.data == b"oops\n"
    assert target.backend.read_file(target.ref("files"), "talk", "outputs/none.txt") is None


def test_stopped_tasks_end_stopped_and_cancel_ends_the_rest(target: Target) -> None:
    target.submit("halt", [task("stop-me", "sleep 300"), task("cancel-me", "sleep 300")])
    target.wait_state("halt", "stop-me", TaskState.RUNNING)
    target.wait_state("halt", "cancel-me", TaskState.RUNNING)
    target.backend.stop_tasks(target.ref("halt"), ["stop-me"])
    target.wait_state("halt", "stop-me", TaskState.STOPPED)
    assert target.tasks("halt")["cancel-me"].state == TaskState.RUNNING
    target.backend.cancel_job(target.ref("halt"))
    info = target.wait("halt")
    assert info.state == "cancelled" and dict(info.task_counts) == {"stopped": 1, "cancelled": 1}


def test_unknown_jobs_are_not_found(target: Target) -> None:
    ghost = target.ref("no-such-job")
    assert target.backend.get_job(ghost) is None
    with pytest.raises(NotFoundError):
        target.backend.list_tasks(ghost)
    with pytest.raises(NotFoundError):
        target.backend.delete_job(ghost)


def test_deleted_jobs_are_gone(target: Target) -> None:
    target.submit("doomed-job", [task("quick", "true")])
    target.wait("doomed-job")
    target.backend.delete_job(target.ref("doomed-job"))
    deadline = time.monotonic() + 30
    while target.backend.get_job(target.ref("doomed-job")) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_cost_ledger_attributes_node_time_and_outlives_the_pool(target: Target) -> None:
    """A backend that declares a cost ledger accounts for a task's share of its node while it ran,
    keeps the rest as idle time, honours ``since``, and still answers for a deleted pool."""
    if not supports(target.backend, CostLedger):
        with pytest.raises(UnsupportedError, match="cost ledger"):
            as_capability(target.backend, CostLedger)
        return
    ledger = as_capability(target.backend, CostLedger)
    pools.create_pool(target.make_pool("ledgered"), backend=target.backend)
    ref = JobRef("ledgered", "costed")
    target.backend.submit(JobLaunch(id="costed", pool_id="ledgered"), [task("held", "sleep 2")])
    deadline = time.monotonic() + 120
    while not (info := target.backend.get_job(ref)) or not info.finished:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    held = target.backend.list_tasks(ref)[0]
    pools.delete_pool("ledgered", backend=target.backend)
    spans = list(ledger.usage("ledgered"))
    mine = [span for span in spans if span.job_id == "costed"]
    assert mine and {span.task_id for span in mine} == {"held"}
    assert all(0 < span.share <= 1 and span.cost >= 0 and span.end > span.start for span in spans)
    assert held.started_at is not None and held.ended_at is not None
    ran = sum(span.end - span.start for span in mine) / len({span.node_id for span in mine})
    assert abs(ran - (held.ended_at - held.started_at)) < 2.0, "the task is charged while it ran"
    assert any(span.job_id is None for span in spans), "the node's other time is idle"
    later = list(ledger.usage("ledgered", since=held.ended_at))
    assert later and all(span.start >= held.ended_at for span in later)
