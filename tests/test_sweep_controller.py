"""The sweep controller loop against an in-memory cluster implementing ``SweepCluster``.

Pure logic: the fake holds tasks and metrics files; tests move trials along by hand. The real
cluster runs the same loop in ``tests/test_sweep_adaptive_ray.py``.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from orchestrator.model import FileChunk, JobInfo, TaskInfo, TaskLaunch, TaskState
from orchestrator.spec.job import JobSpec
from orchestrator.sweep.controller import ControllerSettings, SweepController
from orchestrator.sweep.metrics_book import TrialMetricsBook


@dataclass
class FakeTask:
    launch: TaskLaunch
    state: TaskState = TaskState.PENDING


@dataclass
class FakeCluster:
    """One job's tasks and metrics files in memory; idempotent like the real backends."""

    created_at: float = 0.0
    tasks_by_id: dict[str, FakeTask] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    sealed: bool = False
    stop_calls: list[list[str]] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    reads: list[tuple[str, int]] = field(default_factory=list)
    fail_next: int = 0

    def job(self) -> JobInfo:
        counts: dict[str, int] = {}
        for task in self.tasks_by_id.values():
            counts[task.state.value] = counts.get(task.state.value, 0) + 1
        done = self.sealed and all(t.state.is_terminal() for t in self.tasks_by_id.values())
        return JobInfo(id="job", pool_id="pool", state="completed" if done else "active",
                       created_at=self.created_at, task_counts=counts)

    def tasks(self) -> list[TaskInfo]:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("manager briefly unreachable")
        return [TaskInfo(id=tid, job_id="job", state=t.state, params=dict(t.launch.params))
                for tid, t in self.tasks_by_id.items()]

    def submit(self, launches: list[TaskLaunch]) -> None:
        for launch in launches:
            if launch.id not in self.tasks_by_id:
                self.tasks_by_id[launch.id] = FakeTask(launch)
                self.submitted.append(launch.id)

    def read_metrics(self, task_id: str, offset: int) -> FileChunk | None:
        self.reads.append((task_id, offset))
        data = self.files.get(task_id)
        return None if data is None else FileChunk(data=data[offset:], size=len(data))

    def stop(self, task_ids: list[str]) -> None:
        self.stop_calls.append(list(task_ids))
        for task_id in task_ids:
            if not self.tasks_by_id[task_id].state.is_terminal():
                self.tasks_by_id[task_id].state = TaskState.STOPPED

    def seal(self) -> None:
        self.sealed = True

    # -- what trials do, driven by the tests -------------------------------------------------
    def start(self, task_id: str) -> None:
        self.tasks_by_id[task_id].state = TaskState.RUNNING

    def report(self, task_id: str, step: int, **values: float) -> None:
        line = json.dumps({"step": step, **values}) + "\n"
        self.files[task_id] = self.files.get(task_id, b"") + line.encode()

    def finish(self, task_id: str, state: TaskState = TaskState.SUCCEEDED) -> None:
        self.tasks_by_id[task_id].state = state

    def in_flight(self) -> list[str]:
        return [tid for tid, t in self.tasks_by_id.items() if not t.state.is_terminal()]

    def params(self, task_id: str) -> dict[str, Any]:
        return dict(self.tasks_by_id[task_id].launch.params)


def sweep_job(**task: Any) -> JobSpec:
    base = {"id": "trial", "command": "train --x {{x}}", "search_space": {"x": {"uniform": [0, 1]}},
            "objective": {"metric": "score", "goal": "maximize"}}
    return JobSpec.model_validate({"id": "job", "pool": "pool", "workdir": None, "tasks": [{**base, **task}]})


def bayesian_job(total: int, concurrent: int) -> JobSpec:
    return sweep_job(sampling="bayesian", seed=7,
                     limits={"max_total_trials": total, "max_concurrent_trials": concurrent})


def controller(job: JobSpec, cluster: FakeCluster, clock: float = 0.0) -> SweepController:
    return SweepController(job, cluster, ControllerSettings(poll_seconds=0.0), clock=lambda: clock)


def static_trials(job: JobSpec, cluster: FakeCluster, count: int) -> list[str]:
    """What the CLI does before starting the controller: submit the trials known up front."""
    from orchestrator.sweep.trial import Trial, trial_task_id
    from orchestrator.task_launch import launch_for

    task = job.tasks[0]
    launches = [launch_for(job, task, trial_task_id("trial", i), gpus_per_node=0, pool_nodes=1,
                           trial=Trial(index=i, params={"x": i / 10})) for i in range(count)]
    cluster.submit(launches)
    return [launch.id for launch in launches]


def run_trial(cluster: FakeCluster, task_id: str, score: float | None, state: TaskState = TaskState.SUCCEEDED) -> None:
    cluster.start(task_id)
    if score is not None:
        cluster.report(task_id, 1, score=score)
    cluster.finish(task_id, state)


def test_bayesian_fills_up_to_max_concurrent_and_stops_at_max_total() -> None:
    cluster = FakeCluster()
    control = controller(bayesian_job(total=5, concurrent=2), cluster)
    assert not control.step()
    assert cluster.submitted == ["trial-00000", "trial-00001"] and not cluster.sealed
    assert not control.step()
    assert len(cluster.submitted) == 2
    while len(cluster.submitted) < 5 or cluster.in_flight():
        assert len(cluster.in_flight()) <= 2
        oldest = cluster.in_flight()[0]
        run_trial(cluster, oldest, score=cluster.params(oldest)["x"])
        control.step()
    assert cluster.submitted == [f"trial-{i:05d}" for i in range(5)]
    assert cluster.sealed and control.step()
    assert all(0 <= cluster.params(t)["x"] <= 1 for t in cluster.submitted)
    assert control.sweeps[0].told == set(cluster.submitted)


def test_failed_trials_are_told_as_failures_and_still_count() -> None:
    cluster = FakeCluster()
    control = controller(bayesian_job(total=3, concurrent=1), cluster)
    control.step()
    run_trial(cluster, "trial-00000", score=None, state=TaskState.FAILED)
    control.step()
    run_trial(cluster, "trial-00001", score=0.5)
    control.step()
    run_trial(cluster, "trial-00002", score=0.9)
    assert control.step() or control.step()
    search = control.sweeps[0].search
    assert search is not None
    best = search.best()
    assert best is not None and best[1] == 0.9
    assert len(cluster.submitted) == 3


def test_early_termination_stops_a_losing_trial_once() -> None:
    job = sweep_job(sampling="random", limits={"max_total_trials": 4},
                    early_termination={"policy": "median_stopping", "delay_evaluation": 2})
    cluster = FakeCluster()
    ids = static_trials(job, cluster, 4)
    control = controller(job, cluster)
    for task_id in ids:
        cluster.start(task_id)
    for step in (1, 2, 3):
        for task_id, score in zip(ids, (0.9, 0.9, 0.9, 0.1)):
            cluster.report(task_id, step, score=score + step / 100)
        control.step()
    assert cluster.stop_calls == [["trial-00003"]]
    assert cluster.tasks_by_id["trial-00003"].state == TaskState.STOPPED
    assert cluster.sealed
    for task_id in ids[:3]:
        cluster.finish(task_id)
    assert control.step()


def test_early_termination_waits_for_delay_evaluation() -> None:
    job = sweep_job(sampling="random", limits={"max_total_trials": 2},
                    early_termination={"policy": "bandit", "slack_factor": 0.1, "delay_evaluation": 5})
    cluster = FakeCluster()
    ids = static_trials(job, cluster, 2)
    control = controller(job, cluster)
    for step in range(1, 5):
        for task_id, score in zip(ids, (0.9, 0.1)):
            cluster.start(task_id)
            cluster.report(task_id, step, score=score)
        control.step()
    assert cluster.stop_calls == []
    for task_id, score in zip(ids, (0.9, 0.1)):
        cluster.report(task_id, 5, score=score)
    control.step()
    assert cluster.stop_calls == [["trial-00001"]]


def test_timeout_stops_what_is_left_and_seals() -> None:
    job = sweep_job(sampling="bayesian", limits={"max_total_trials": 10, "max_concurrent_trials": 2, "timeout": "1m"})
    cluster = FakeCluster(created_at=1000.0)
    early = controller(job, cluster, clock=1030.0)
    early.step()
    run_trial(cluster, "trial-00000", score=0.4)
    cluster.start("trial-00001")
    early.step()
    assert len(cluster.submitted) == 3 and not cluster.sealed
    late = controller(job, cluster, clock=1061.0)
    assert not late.step()
    assert sorted(cluster.stop_calls[-1]) == ["trial-00001", "trial-00002"]
    assert cluster.sealed and len(cluster.submitted) == 3
    assert {t.state for t in cluster.tasks_by_id.values()} == {TaskState.SUCCEEDED, TaskState.STOPPED}
    assert late.step()


def test_restart_continues_without_duplicates_and_retells_results() -> None:
    job = bayesian_job(total=6, concurrent=3)
    cluster = FakeCluster()
    first = controller(job, cluster)
    first.step()
    run_trial(cluster, "trial-00000", score=0.2)
    run_trial(cluster, "trial-00001", score=0.7)
    first.step()
    assert len(cluster.submitted) == 5
    before = {tid: cluster.params(tid) for tid in cluster.submitted}

    second = controller(job, cluster)
    assert not second.step()
    assert len(cluster.submitted) == 5, "nothing new while 3 trials are in flight"
    search = second.sweeps[0].search
    assert search is not None and search.best() is not None and search.best()[1] == 0.7
    for task_id in cluster.in_flight():
        run_trial(cluster, task_id, score=0.5)
    second.step()
    assert cluster.submitted == [f"trial-{i:05d}" for i in range(6)]
    assert {tid: cluster.params(tid) for tid in list(before)} == before
    new_x = cluster.params("trial-00005")["x"]
    assert all(new_x != params["x"] for params in before.values())
    run_trial(cluster, "trial-00005", score=0.1)
    assert second.step() or second.step()


def test_run_survives_a_failing_pass_and_ends_when_the_job_completes() -> None:
    cluster = FakeCluster(fail_next=2)
    control = controller(bayesian_job(total=2, concurrent=2), cluster)
    finisher_done = threading.Event()

    def finish_trials() -> None:
        while len(cluster.submitted) < 2:
            finisher_done.wait(0.01)
        for task_id in list(cluster.submitted):
            run_trial(cluster, task_id, score=0.3)
        finisher_done.set()

    worker = threading.Thread(target=finish_trials)
    worker.start()
    control.run()
    worker.join()
    assert cluster.sealed and cluster.job().finished and control.last_error is None


def test_metrics_are_read_at_offsets_and_reread_after_a_restart_of_the_file() -> None:
    cluster = FakeCluster()
    book = TrialMetricsBook(cluster.read_metrics)
    task = TaskInfo(id="t", job_id="job", state=TaskState.RUNNING)
    cluster.report("t", 1, score=0.1)
    book.refresh(task)
    size = len(cluster.files["t"])
    cluster.files["t"] += b'{"step": 2, "score": 0.'
    book.refresh(task)
    cluster.files["t"] += b'3}\n'
    book.refresh(task)
    assert book.history("t", "score") == [(1, 0.1), (2, 0.3)]
    assert ("t", size) in cluster.reads
    cluster.files["t"] = b'{"step": 1, "score": 0.6}\n'  # a retried attempt starts a new file
    book.refresh(task)
    assert book.history("t", "score") == [(1, 0.6)]
    book.refresh(TaskInfo(id="t", job_id="job", state=TaskState.SUCCEEDED))
    reads = len(cluster.reads)
    book.refresh(TaskInfo(id="t", job_id="job", state=TaskState.SUCCEEDED))
    assert len(cluster.reads) == reads and book.best("t", "score", maximize=True) == 0.6


def held_job() -> JobSpec:
    return JobSpec.model_validate({"id": "job", "pool": "pool", "workdir": None, "tasks": [
        {"id": "trial", "command": "train --x {{x}}", "search_space": {"x": {"choice": [1, 2, 3, 4, 5]}},
         "limits": {"max_concurrent_trials": 2}}]})


def test_held_back_trials_are_streamed_within_max_concurrent_trials() -> None:
    """An engine that cannot cap tasks in flight: the controller submits the grid two at a time."""
    cluster = FakeCluster()
    settings = ControllerSettings(caps_in_flight=False)
    controller = SweepController(held_job(), cluster, settings)
    assert controller.step() is False
    assert cluster.submitted == ["trial-00000", "trial-00001"] and not cluster.sealed
    cluster.start("trial-00000")
    controller.step()
    assert len(cluster.in_flight()) == 2, "nothing more while two are in flight"
    cluster.finish("trial-00000")
    controller.step()
    assert cluster.submitted[-1] == "trial-00002" and len(cluster.in_flight()) == 2
    restarted = SweepController(held_job(), cluster, settings)  # a restarted controller adopts and goes on
    for task_id in list(cluster.in_flight()):
        cluster.finish(task_id)
    while not restarted.step():
        for task_id in list(cluster.in_flight()):
            assert len(cluster.in_flight()) <= 2
            cluster.finish(task_id)
    assert cluster.submitted == [f"trial-{i:05d}" for i in range(5)] and cluster.sealed
    assert [cluster.params(f"trial-{i:05d}")["x"] for i in range(5)] == [1, 2, 3, 4, 5]


def test_an_engine_that_caps_in_flight_needs_no_controller_for_max_concurrent_trials() -> None:
    controller = SweepController(held_job(), FakeCluster(), ControllerSettings(caps_in_flight=True))
    assert controller.sweeps == []
