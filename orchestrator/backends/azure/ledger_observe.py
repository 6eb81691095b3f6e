"""Taking an ``Observation`` of a pool from Batch's own records: the pool, its nodes, its tasks.

Node times are Batch's (``allocationTime``, ``stateTransitionTime``, ``lastBootTime``); an
attempt is a task's ``executionInfo`` (start, end) on ``nodeInfo.nodeId`` holding
``requiredSlots`` of the node; a multi-instance task's other instances are its subtasks
(``subtasksinfo``), each on its own node. Prices are
resolved when observed (``prices_of``), so a deleted pool's ledger still knows them.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from orchestrator.backends.azure import vm_sizes
from orchestrator.backends.azure.batch_client import BatchApi, text
from orchestrator.backends.azure.ledger_model import (
    AttemptSeen,
    NodeSeen,
    Observation,
    Prices,
)
from orchestrator.errors import NotFoundError, SpecError
from orchestrator.spec.pool import PoolSpec

TASK_FIELDS = ["id", "state", "executionInfo", "nodeInfo", "requiredSlots", "multiInstanceSettings"]


def prices_of(spec: PoolSpec | None, vm_size: str | None) -> Prices:
    """The pool's negotiated ``price_per_node_hour``, else orch's VM table for ``vm_size``."""
    if spec is not None and spec.price_per_node_hour is not None:
        return Prices(spec.price_per_node_hour, spec.price_per_node_hour, negotiated=True)
    try:
        size = vm_sizes.lookup(vm_size or "")
    except SpecError:
        return Prices(None, None)
    return Prices(size.price_dedicated, size.price_spot)


def observe_pool(api: BatchApi, pool_id: str, *, writer: str, spec: PoolSpec | None,
                 attempts: Iterable[AttemptSeen] = ()) -> Observation:
    """The pool and every node in it now (a pool that is gone: ``pool_exists`` false)."""
    at = time.time()
    pool = api.get_or_none(f"reading pool {pool_id!r}", api.client.get_pool, pool_id)
    if pool is None:
        return Observation(at=at, writer=writer, pool_exists=False, lists_nodes=False, attempts=tuple(attempts))
    nodes = api.listed(f"listing nodes of {pool_id!r}", api.client.list_nodes, pool_id)
    return Observation(
        at=at, writer=writer, vm_size=pool.vm_size, slots_per_node=pool.task_slots_per_node or 1,
        allocation=text(pool.allocation_state), allocation_since=_seconds(pool.allocation_state_transition_time),
        prices=prices_of(spec, pool.vm_size), nodes=tuple(node_seen(node) for node in nodes), attempts=tuple(attempts))


def node_seen(node: Any) -> NodeSeen:
    return NodeSeen(id=node.id, dedicated=bool(node.is_dedicated), allocated=_seconds(node.allocation_time) or 0.0,
                    state=text(node.state), since=_seconds(node.state_transition_time) or 0.0,
                    boot=_seconds(node.last_boot_time))


def job_attempts(api: BatchApi, job_id: str) -> list[AttemptSeen]:
    """The last attempt of every task of the job that has started (its job manager included)."""
    tasks = api.listed(f"listing tasks of {job_id!r}", api.client.list_tasks, job_id, select=TASK_FIELDS)
    return tasks_attempts(api, job_id, tasks)


def tasks_attempts(api: BatchApi, job_id: str, tasks: Iterable[Any]) -> list[AttemptSeen]:
    """The attempts of ``tasks`` (listed with ``TASK_FIELDS``), a multi-instance task's on every node."""
    found: list[AttemptSeen] = []
    for task in tasks:
        attempt = attempt_of(job_id, task)
        if attempt is None:
            continue
        found.append(attempt)
        if task.multi_instance_settings is not None:
            subtasks = api.listed(f"listing the instances of {task.id!r}", api.client.list_subtasks, job_id, task.id)
            found += [AttemptSeen(job=job_id, task=task.id, node=sub.node_info.node_id, start=attempt.start,
                                  end=_seconds(sub.end_time) if text(sub.state) == "completed" else None,
                                  slots=attempt.slots)
                      for sub in subtasks if sub.node_info is not None and sub.node_info.node_id]
    return found


def attempt_of(job_id: str, task: Any) -> AttemptSeen | None:
    info, node = task.execution_info, task.node_info
    if info is None or info.start_time is None or node is None or not node.node_id:
        return None
    ended = text(task.state) == "completed"
    return AttemptSeen(job=job_id, task=task.id, node=node.node_id, start=info.start_time.timestamp(),
                       end=_seconds(info.end_time) if ended else None, slots=task.required_slots or 1)


def pool_attempts(api: BatchApi, pool_id: str) -> list[AttemptSeen]:
    """The attempts Batch still shows for every job of the pool."""
    found: list[AttemptSeen] = []
    for job in api.listed("listing jobs", api.client.list_jobs):
        if job.pool_info is not None and job.pool_info.pool_id == pool_id and text(job.state) != "deleting":
            try:
                found += job_attempts(api, job.id)
            except NotFoundError:  # deleted between the two calls
                continue
    return found


def for_storage(observation: Observation) -> Observation:
    """What to keep of a full observation: the attempts Batch may later lose (running ones), not
    the ended ones it keeps until their job is deleted (``delete_job`` keeps those first)."""
    return replace(observation, attempts=tuple(a for a in observation.attempts if a.end is None))


def _seconds(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None
