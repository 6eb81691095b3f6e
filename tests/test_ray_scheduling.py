"""How the Ray pool manager places attempts, without Ray: what is journaled before anything is
sent, how deep a node's local queue may be, and when an agent asks for a checkpoint."""
from __future__ import annotations

from typing import Any

from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.backends.ray.messages import AgentFacts
from orchestrator.backends.ray.scheduling import (
    MAX_PREFETCH,
    MIN_PREFETCH,
    NodeShare,
    Scheduler,
    prefetch_depth,
)
from orchestrator.model import TaskLaunch


class Recorder:
    """A node agent's handle that logs what it is sent."""

    def __init__(self, index: int, log: list[str]) -> None:
        self.index, self.log = index, log
        self.submit = self._method("submit")
        self.run_gang = self._method("run_gang")

    def _method(self, name: str) -> Any:
        recorder = self

        class Method:
            def remote(self, payload: Any) -> None:
                count = len(payload) if isinstance(payload, list) else 1
                recorder.log.append(f"{name} to {recorder.index}: {count}")
        return Method()


class Placing(Scheduler):
    def __init__(self, slots: int = 1, nodes: int = 2, saved: set[str] | None = None) -> None:
        self.log: list[str] = []
        self.nodes = [NodeShare(facts=AgentFacts(index=i, node_id=f"n{i}", address="127.0.0.1", cpus=slots, gpus=0,
                                                 slots=slots), handle=Recorder(i, self.log), name=f"agent-{i}")
                      for i in range(nodes)]
        self.jobs: dict[str, JobRecord] = {}
        self.gang_nodes: dict[tuple[str, str], list[int]] = {}
        self.saved = saved or set()

    def _persist(self) -> None:
        new = sum(len(job.new) for job in self.jobs.values())
        changed = sum(len(job.changed) for job in self.jobs.values())
        self.log.append(f"persist {new} new, {changed} sent")
        for job in self.jobs.values():
            job.changed.clear()
            job.new.clear()

    def _has_checkpoint(self, job_id: str, task_id: str) -> bool:
        return task_id in self.saved


def add_job(placing: Placing, count: int, durations: list[float] | None = None) -> JobRecord:
    job = JobRecord(id="j", pool_id="p", created_at=0.0)
    job.add([TaskLaunch(id=f"t{i}", command="true") for i in range(count)])
    job.durations.extend(durations or [])
    placing.jobs["j"] = job
    return job


def test_assignments_are_journaled_before_any_attempt_is_sent() -> None:
    placing = Placing()
    add_job(placing, 5)
    placing._dispatch()
    assert placing.log[0] == "persist 5 new, 2 sent"  # the new tasks and the assignments: one transaction
    assert sorted(placing.log[1:]) == ["submit to 0: 1", "submit to 1: 1"]


def test_short_tasks_fill_a_deeper_local_queue() -> None:
    placing = Placing()
    add_job(placing, 1000, durations=[0.001] * 10)  # 1 ms tasks: 0.25 s of work is 250 per slot
    placing._dispatch()
    assert sorted(placing.log[1:]) == ["submit to 0: 250", "submit to 1: 250"]


def test_prefetch_depth_is_about_a_quarter_second_of_work_per_slot() -> None:
    assert prefetch_depth(None) == 0 and prefetch_depth(0.5) == 0 and prefetch_depth(3.0) == 0
    assert prefetch_depth(0.4) == MIN_PREFETCH and prefetch_depth(0.01) == 25
    assert prefetch_depth(0.0) == MAX_PREFETCH and prefetch_depth(1e-5) == MAX_PREFETCH


def test_an_agent_asks_for_a_checkpoint_only_when_there_may_be_one() -> None:
    placing = Placing(saved={"t1"})
    job = add_job(placing, 3)
    fresh, saved = (placing._run_for(job, job.tasks[t]) for t in ("t0", "t1"))
    assert (fresh.checkpoint, saved.checkpoint) == (False, True)
    job.tasks["t2"].attempt = 1  # a retry asks: an earlier attempt may have saved one
    assert placing._run_for(job, job.tasks["t2"]).checkpoint is True
