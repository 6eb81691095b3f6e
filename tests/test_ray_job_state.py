"""The Ray pool manager's bookkeeping without Ray: retries, lost attempts, requeues, replay from
the journal, and reconciling a restarted manager with what the agents hold."""
from __future__ import annotations

from pathlib import Path

from orchestrator.backends.ray import recovery
from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.backends.ray.journal import Journal
from orchestrator.backends.ray.messages import AgentFacts
from orchestrator.backends.ray.scheduling import NodeShare
from orchestrator.model import TaskLaunch, TaskState


def job(*launches: TaskLaunch) -> JobRecord:
    record = JobRecord(id="j", pool_id="p", created_at=0.0)
    record.add(list(launches))
    return record


def run(record: JobRecord, task_id: str, node: int = 0, when: float = 1.0) -> None:
    assert record.ready.popleft() == task_id
    record.dispatched(task_id, node)
    record.started(task_id, record.tasks[task_id].attempt, node, when)


def nodes(count: int) -> list[NodeShare]:
    return [NodeShare(facts=AgentFacts(index=i, node_id=f"n{i}", address="127.0.0.1", cpus=1, gpus=0),
                      handle=None, name=f"agent-{i}") for i in range(count)]


def test_a_failed_attempt_is_retried_with_its_own_start_time() -> None:
    record = job(TaskLaunch(id="t", command="x", max_retries=1))
    run(record, "t", when=10.0)
    assert record.ended("t", 0, "failed", 1, "boom", 11.0, 0) is True
    task = record.tasks["t"]
    assert (task.state, task.attempt, task.started_at) == (TaskState.PENDING, 1, None)
    run(record, "t", when=20.0)
    assert record.tasks["t"].started_at == 20.0
    assert record.ended("t", 1, "succeeded", 0, None, 21.0, 0) is False
    assert [(a.attempt, a.state, a.started_at) for a in record.tasks["t"].history] == [
        (0, "failed", 10.0), (1, "succeeded", 20.0)]


def test_a_report_from_an_earlier_attempt_changes_nothing() -> None:
    record = job(TaskLaunch(id="t", command="x", max_retries=1))
    run(record, "t")
    record.lost("t", "lost: node went down", 2.0)
    assert record.ended("t", 0, "succeeded", 0, None, 3.0, 0) is False
    assert record.tasks["t"].state == TaskState.PENDING and record.tasks["t"].attempt == 1


def test_a_lost_attempt_is_retried_within_max_retries_then_the_task_is_lost() -> None:
    record = job(TaskLaunch(id="t", command="x", max_retries=1), TaskLaunch(id="after", command="y", depends_on=("t",)))
    run(record, "t")
    assert record.lost("t", "lost: node 0 went down", 2.0) is True
    run(record, "t")
    assert record.lost("t", "lost: node 1 went down", 3.0) is False
    assert record.tasks["t"].state == TaskState.LOST
    assert [a.state for a in record.tasks["t"].history] == ["lost", "lost"]
    assert record.tasks["after"].state == TaskState.FAILED, "dependents of a lost task do not run"


def test_losing_a_cancelled_jobs_attempt_ends_it_cancelled() -> None:
    record = job(TaskLaunch(id="t", command="x", max_retries=3))
    run(record, "t")
    record.cancelled = True
    assert record.lost("t", "lost", 2.0) is False
    assert record.tasks["t"].state == TaskState.CANCELLED


def test_a_requeued_attempt_goes_first_and_is_not_counted() -> None:
    record = job(TaskLaunch(id="a", command="x"), TaskLaunch(id="b", command="y"))
    assert record.ready.popleft() == "a"
    record.dispatched("a", 0)
    record.requeue("a")
    assert list(record.ready) == ["a", "b"] and record.tasks["a"].attempt == 0


def test_a_job_replays_from_its_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    record = job(TaskLaunch(id="a", command="x", max_retries=1), TaskLaunch(id="b", command="y", depends_on=("a",)))
    run(record, "a", when=5.0)
    record.ended("a", 0, "failed", 2, "boom", 6.0, 0)
    run(record, "a", when=7.0)
    recovery.persist_changes(journal, [record])
    assert not (record.changed or record.new or record.ended_attempts), "change marks are cleared once written"
    journal.close()
    again = recovery.restore_jobs(Journal(tmp_path / "journal"), "p")["j"]
    a = again.tasks["a"]
    assert (a.state, a.attempt, a.started_at, a.dispatched) == (TaskState.RUNNING, 1, 7.0, True)
    assert [h.state for h in a.history] == ["failed"]
    assert again.tasks["b"].waiting_on == 1 and list(again.ready) == []


def test_forgetting_a_job_drops_its_checkpoints_so_its_id_starts_fresh(tmp_path: Path) -> None:
    from orchestrator.backends.ray.journal import write_atomically

    journal = Journal(tmp_path / "journal")
    for job_id in ("gone", "kept"):
        write_atomically(journal.checkpoint_path(job_id, "t"), b"zip")
    assert journal.has_checkpoints("gone") and not journal.has_checkpoints("never")
    journal.forget_job("gone")
    assert not journal.has_checkpoints("gone") and not journal.checkpoint_path("gone", "t").exists()
    assert journal.checkpoint_path("kept", "t").read_bytes() == b"zip"
    journal.forget_job("never")  # nothing to drop
    journal.close()


def test_reconcile_adopts_what_agents_hold_and_loses_what_no_agent_runs() -> None:
    record = job(*(TaskLaunch(id=t, command="x", max_retries=1) for t in ("held", "gone", "sent", "waiting")))
    run(record, "held", node=1)
    run(record, "gone", node=0)
    assert record.ready.popleft() == "sent"
    record.dispatched("sent", 0)
    shares = nodes(2)
    held = {("j", "held", 0): (1, "running"), ("j", "stray", 0): (0, "running")}
    unknown = recovery.reconcile({"j": record}, shares, {}, held, now=9.0)
    assert unknown == [(0, "j", "stray")], "an attempt no job knows is returned for cancelling"
    assert record.tasks["held"].state == TaskState.RUNNING and ("j", "held") in shares[1].assigned
    gone = record.tasks["gone"]
    assert (gone.state, gone.attempt, gone.history[0].state) == (TaskState.PENDING, 1, "lost")
    sent = record.tasks["sent"]
    assert (sent.state, sent.attempt, sent.dispatched) == (TaskState.PENDING, 0, False)
    assert list(record.ready)[:2] == ["gone", "sent"] or set(list(record.ready)[:2]) == {"gone", "sent"}


def test_losing_a_node_loses_its_attempts_and_stops_a_gangs_other_ranks() -> None:
    record = job(TaskLaunch(id="solo", command="x", max_retries=1), TaskLaunch(id="gang", command="y", max_retries=1))
    shares = nodes(2)
    run(record, "solo", node=1)
    run(record, "gang", node=0)
    shares[1].assigned[("j", "solo")] = (1.0, 0.0)
    shares[0].assigned[("j", "gang")] = shares[1].assigned[("j", "gang")] = (1.0, 0.0)
    gangs = {("j", "gang"): [0, 1]}
    stopped = recovery.lose_node(1, shares, {"j": record}, gangs, now=3.0)
    assert shares[1].down and shares[1].assigned == {} and shares[0].assigned == {}
    assert stopped == [("j", "gang", [0])]
    assert record.tasks["solo"].attempt == 1 and record.tasks["gang"].attempt == 1


def test_a_restarted_manager_keeps_the_journaled_nodes_while_they_live() -> None:
    def listing(*node_ids: str) -> tuple[list[str], list[AgentFacts]]:
        return [f"agent-{i}" for i in range(len(node_ids))], [
            AgentFacts(index=i, node_id=n, address="127.0.0.1", cpus=1, gpus=0) for i, n in enumerate(node_ids)]

    resized, original, restarted = listing("a", "b", "c"), listing("a", "b"), listing("x", "y")
    assert recovery.current_nodes(None, original, {"a", "b"}) == original
    assert recovery.current_nodes(resized, original, {"a", "b", "c"}) == resized, "Ray restarts it with old args"
    assert recovery.current_nodes(resized, restarted, {"x", "y"}) == restarted, "the cluster was started anew"
    assert recovery.current_nodes(resized, restarted, {"a"}) == resized, "neither lives: the watch finds them down"
