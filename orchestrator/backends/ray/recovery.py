"""How the pool manager survives: replaying its journal, reconciling with the agents, losing nodes.

- **Journal**: every change is written (``persist_changes``) before the manager acknowledges it.
- **Replay**: a (re)started manager rebuilds every job from the journal (``JobRecord.restore``).
- **Reconcile**: it then asks each live agent what it holds (queued or running attempts). An
  attempt the journal has as running or sent that an agent holds is adopted (never run twice);
  one that had started but no agent holds is *lost* (the node or the whole pool went away under
  it) and retried within ``max_retries``; one that was sent but never started is queued again,
  uncounted. Attempts an agent holds that the journal does not know are killed.
- **Node loss**: a node is down when Ray reports it dead or its agent stops answering; its
  attempts are lost (a gang loses every rank and is retried as a gang) and processes it left
  behind on this machine are killed, identified by pid and start time.
"""
from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import ray
from orchestrator.backends.ray import orphans
from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.backends.ray.journal import Journal
from orchestrator.model import TaskState

if TYPE_CHECKING:
    from orchestrator.backends.ray.scheduling import NodeShare

CALL_TIMEOUT = 10.0
Held = dict[tuple[str, str, int], tuple[int, str]]  # (job, task, attempt) -> (node index, queued|running)


def persist_changes(journal: Journal, jobs: Iterable[JobRecord]) -> None:
    """Journal what changed in ``jobs`` since the last call (new tasks, changed states, ended
    attempts), in one durable transaction, and clear their change marks."""
    dirty = [job for job in jobs if job.changed or job.new or job.ended_attempts]
    if not dirty:
        return
    with journal.transaction() as tx:
        for job in dirty:
            row = job.row()
            tx.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (row.id, row.created_at, row.max_running, row.sealed, row.cancelled, row.ended_at,
                        row.spec_digest, row.workdir, pickle.dumps(row.inputs)))
            base = len(job.tasks) - len(job.new)
            tx.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           ((job.id, task_id, base + offset, pickle.dumps(job.tasks[task_id].launch))
                            + _state_values(job, task_id) for offset, task_id in enumerate(job.new)))
            new = set(job.new)
            tx.executemany("UPDATE tasks SET state = ?, attempt = ?, node = ?, exit_code = ?, started_at = ?, "
                           "ended_at = ?, error = ?, dispatched = ? WHERE job_id = ? AND task_id = ?",
                           (_state_values(job, task_id) + (job.id, task_id)
                            for task_id in job.changed if task_id not in new))
            tx.executemany("INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           ((job.id, task_id, a.attempt, a.node, a.state, a.started_at, a.ended_at, a.exit_code,
                             a.error) for task_id, a in job.ended_attempts))
            job.changed.clear()
            job.new.clear()
            job.ended_attempts.clear()


def _state_values(job: JobRecord, task_id: str) -> tuple[Any, ...]:
    record = job.tasks[task_id]
    return (record.state.value, record.attempt, record.node, record.exit_code, record.started_at, record.ended_at,
            record.error, record.dispatched)


def restore_jobs(journal: Journal, pool_id: str) -> dict[str, JobRecord]:
    """Every journaled job as it was."""
    return {row.id: JobRecord.restore(pool_id, row, list(journal.tasks(row.id)), journal.attempts(row.id))
            for row in journal.jobs()}


def current_nodes(saved: tuple[list[str], list[Any]] | None, given: tuple[list[str], list[Any]],
                  alive: set[str]) -> tuple[list[str], list[Any]]:
    """Which node list a (re)starting manager uses: the journaled one (newer than what Ray restarts
    the manager with, after a resize) while its Ray nodes live; the one it was started with when
    those are gone (the pool's cluster was started again, e.g. after the machine restarted)."""
    if not saved:
        return given
    if all(fact.node_id in alive for fact in saved[1]):
        return saved
    return given if all(fact.node_id in alive for fact in given[1]) else saved


def inventories(nodes: list[NodeShare]) -> tuple[Held, set[int]]:
    """What each live agent holds, and the indices of agents that did not answer."""
    held: Held = {}
    silent: set[int] = set()
    for index, node in enumerate(nodes):
        if node.down:
            continue
        try:
            entries = ray.get(node.handle.inventory.remote(), timeout=CALL_TIMEOUT)
        except Exception:  # a dead or unreachable agent holds nothing we can adopt
            silent.add(index)
            continue
        for job_id, task_id, attempt, state in entries:
            previous = held.get((job_id, task_id, attempt))
            if previous is None or state == "running":
                held[(job_id, task_id, attempt)] = (index, state)
    return held, silent


def reconcile(jobs: dict[str, JobRecord], nodes: list[NodeShare], gang_nodes: dict[tuple[str, str], list[int]],
              held: Held, now: float) -> list[tuple[int, str, str]]:
    """Adopt, lose or requeue every open attempt (see the module docstring). Returns the attempts
    agents hold that no job knows, as (node index, job, task), for the caller to cancel."""
    placed: dict[tuple[str, str], list[int]] = {}
    for (job_id, task_id, attempt), (index, _) in held.items():
        job = jobs.get(job_id)
        record = job.tasks.get(task_id) if job else None
        if record is not None and record.attempt == attempt and not record.state.is_terminal():
            placed.setdefault((job_id, task_id), []).append(index)
    unknown = [(index, job_id, task_id) for (job_id, task_id, attempt), (index, _) in held.items()
               if (job_id, task_id) not in placed]
    for job in jobs.values():
        for task_id, record in job.tasks.items():
            if record.state.is_terminal() or not (record.dispatched or record.state == TaskState.RUNNING):
                continue
            where = placed.get((job.id, task_id))
            if where:
                _adopt(job, record.launch.id, sorted(set(where)), nodes, gang_nodes, held, now)
            elif record.state == TaskState.RUNNING:
                job.lost(task_id, "lost: no node runs it after the pool manager restarted (node or pool gone)", now)
            else:
                job.requeue(task_id)
    return unknown


def _adopt(job: JobRecord, task_id: str, where: list[int], nodes: list[NodeShare],
           gang_nodes: dict[tuple[str, str], list[int]], held: Held, now: float) -> None:
    record = job.tasks[task_id]
    resources = (record.launch.resources.cpus, record.launch.resources.gpus)
    for index in where:
        nodes[index].assigned[(job.id, task_id)] = resources
    if record.launch.distributed is not None:
        gang_nodes[(job.id, task_id)] = where
    head = record.node if record.node in where else where[0]
    job.dispatched(task_id, head)
    if held.get((job.id, task_id, record.attempt), (0, ""))[1] == "running":
        job.started(task_id, record.attempt, head, record.started_at or now)


def alive_ray_nodes() -> set[str]:
    """Ids of the Ray nodes the cluster reports alive."""
    return {node["NodeID"] for node in ray.nodes() if node.get("Alive")}


def answers(handle: Any) -> bool:
    try:
        ray.get(handle.ping.remote(), timeout=CALL_TIMEOUT)
        return True
    except Exception:  # dead actor, dead node, or no answer in time: all mean the node is gone for us
        return False


def lose_node(index: int, nodes: list[NodeShare], jobs: dict[str, JobRecord],
              gang_nodes: dict[tuple[str, str], list[int]], now: float) -> list[tuple[str, str, list[int]]]:
    """Mark node ``index`` down and lose its attempts. Returns the gangs it was part of, as
    (job, task, surviving node indices), whose ranks on other nodes the caller must stop."""
    node = nodes[index]
    node.down = True
    gangs = []
    for key in list(node.assigned):
        job_id, task_id = key
        others = [i for i in gang_nodes.pop(key, [index]) if i != index]
        for other in others:
            nodes[other].assigned.pop(key, None)
        node.assigned.pop(key, None)
        if others:
            gangs.append((job_id, task_id, others))
        job = jobs.get(job_id)
        if job is not None and task_id in job.tasks:
            job.lost(task_id, f"lost: node {index} ({node.facts.address}) went down", now)
    kill_left_behind(node)
    return gangs


def kill_left_behind(node: NodeShare) -> int:
    """Kill the task processes a lost node's agent left running, where its files are on this machine."""
    root = node.facts.extra.get("root") if node.facts.extra else None
    return orphans.kill_recorded(root) if root else 0


def watch_pause(started: float, every: float) -> float:
    return max(0.0, every - (time.monotonic() - started))
