"""Batch pools: create (idempotent) and wait until usable, describe, resize, delete.

Waiting polls the pool's allocation state and its nodes' states, reports changes through the
progress callback, and ends with an error instead of hanging: a node whose start task failed
(its ``startup/stderr.txt`` is quoted), resize errors (quota, capacity), or the timeout. Ctrl-C
during a wait leaves the pool as Azure has it and says how to resume.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

from azure.batch import models as m
from orchestrator.backends.azure import naming, vm_sizes
from orchestrator.backends.azure.batch_client import BatchApi, text
from orchestrator.backends.azure.pool_model import fingerprint
from orchestrator.errors import (
    BackendError,
    CapacityError,
    ConflictError,
    InterruptedByUser,
    NotFoundError,
    WaitTimeoutError,
)
from orchestrator.model import NodeInfo, PoolInfo
from orchestrator.spec.pool import PoolSpec

ProgressFn = Callable[[str], None]
STDERR_TAIL = 2000
USABLE = ("idle", "running")
POLL_MIN, POLL_MAX = 0.2, 5.0


def get(api: BatchApi, pool_id: str) -> Any | None:
    return api.get_or_none(f"reading pool {pool_id!r}", api.client.get_pool, pool_id)


def nodes_of(api: BatchApi, pool_id: str) -> list[Any]:
    return api.listed(f"listing nodes of {pool_id!r}", api.client.list_nodes, pool_id)


def create(api: BatchApi, spec: PoolSpec, options: m.BatchPoolCreateOptions,
           through: Callable[[], None] | None = None) -> None:
    """Create the pool unless Batch has it; a pool with the same id but another spec is a conflict.
    ``through`` creates it another way than the data plane (``arm_pools`` for managed identities)."""
    existing = get(api, spec.id)
    if existing is None:
        try:
            if through is not None:
                through()
            else:
                api.call(f"creating pool {spec.id!r}", api.client.create_pool, options)
            return
        except ConflictError:
            existing = get(api, spec.id)  # created by a retried request, or by someone else meanwhile
            if existing is None:
                raise
    metadata = {item.name: item.value for item in existing.metadata or []}
    if metadata.get(naming.METADATA_SPEC) != fingerprint(spec):
        raise ConflictError(f"Batch already has a pool {spec.id!r} with other settings"
                            + ("" if naming.METADATA_MARK in metadata else " (not created by orch)"),
                            hint="use `orch pool resize` for node counts, or `orch pool delete` and create it again")
    if text(existing.state) == "deleting":
        raise ConflictError(f"pool {spec.id!r} is being deleted", hint="wait for the deletion, then create it again")


def wait_ready(api: BatchApi, pool_id: str, timeout: float, progress: ProgressFn | None) -> None:
    """Wait for allocation ``steady`` and every node idle or running (see the module docstring)."""
    deadline, pause, last = time.monotonic() + timeout, POLL_MIN, ""
    try:
        while True:
            pool = get(api, pool_id)
            if pool is None:
                raise NotFoundError(f"pool {pool_id!r} disappeared while orch waited for it")
            nodes = nodes_of(api, pool_id)
            text = _progress_line(pool, nodes)
            if text != last and progress:
                progress(text)
            pause = POLL_MIN if text != last else min(POLL_MAX, pause * 1.5)
            last = text
            _raise_on_failure(api, pool, nodes)
            if _ready(pool, nodes):
                return
            if time.monotonic() + pause > deadline:
                raise WaitTimeoutError(f"pool {pool_id!r} was not ready within {timeout:g}s ({text})",
                                       hint="`orch pool create` again resumes waiting; `orch pool show` shows "
                                            "nodes; raise azure.allocation_timeout for big pools")
            time.sleep(pause)
    except KeyboardInterrupt:
        raise InterruptedByUser(f"stopped waiting for pool {pool_id!r}; Azure goes on allocating it",
                                hint="run `orch pool create` again to resume waiting, or `orch pool delete`") from None


def _ready(pool: Any, nodes: list[Any]) -> bool:
    if text(pool.allocation_state) != "steady" or text(pool.state) != "active":
        return False
    expected = (pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0)
    return len(nodes) >= expected and all(text(n.state) in USABLE for n in nodes)


def _progress_line(pool: Any, nodes: list[Any]) -> str:
    states = Counter(text(n.state) for n in nodes)
    target = (pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0)
    shown = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "none yet"
    return f"allocation {text(pool.allocation_state)}: {len(nodes)}/{target} nodes ({shown})"


def _raise_on_failure(api: BatchApi, pool: Any, nodes: list[Any]) -> None:
    for node in nodes:
        if text(node.state) == "starttaskfailed":
            info = node.start_task_info
            code = info.exit_code if info is not None else None
            stderr = startup_stderr(api, pool.id, node.id)
            raise BackendError(f"the start task failed on node {node.id} of pool {pool.id!r} (exit code {code})"
                               + (f"; its stderr ends:\n{stderr}" if stderr else ""),
                               hint="fix start_task in the pool file, then `orch pool delete` and create again")
        if text(node.state) in ("unusable", "unknown"):
            raise BackendError(f"node {node.id} of pool {pool.id!r} is {text(node.state)}",
                               hint="`orch pool delete` and create again, or try another vm_size or region")
    if text(pool.allocation_state) == "steady" and pool.resize_errors:
        reasons = "; ".join(f"{e.code}: {e.message}" for e in pool.resize_errors)
        raise CapacityError(f"pool {pool.id!r} could not get its nodes: {reasons}",
                            hint="check the Batch account's core quota for this VM size, or use fewer nodes")


def startup_stderr(api: BatchApi, pool_id: str, node_id: str) -> str:
    """The end of a node's start task stderr ('' when it cannot be read)."""
    try:
        data = api.download(f"reading the start task stderr of {node_id}", api.client.download_node_file,
                            pool_id, node_id, "startup/stderr.txt")
    except (NotFoundError, BackendError):
        return ""
    return data[-STDERR_TAIL:].decode("utf-8", "replace").rstrip()


def info(api: BatchApi, pool_id: str) -> PoolInfo | None:
    pool = get(api, pool_id)
    if pool is None:
        return None
    nodes = nodes_of(api, pool_id) if text(pool.state) == "active" else []
    return describe(pool, nodes)


def describe(pool: Any, nodes: list[Any]) -> PoolInfo:
    size = vm_sizes.lookup(pool.vm_size)
    slots = pool.task_slots_per_node or 1
    infos = tuple(NodeInfo(id=n.id, address=n.ip_address or "", state=text(n.state), cpus=float(size.vcpus),
                           gpus=float(size.gpus), running_tasks=n.running_tasks_count or 0,
                           free_slots=max(0, slots - (n.running_task_slots_count or 0))
                           if text(n.state) in USABLE else 0) for n in nodes)
    state = {"deleting": "deleting"}.get(text(pool.state)) or ("ready" if text(pool.allocation_state) == "steady"
                                                               else text(pool.allocation_state))
    errors = "; ".join(f"{e.code}: {e.message}" for e in pool.resize_errors or [])
    run = pool.auto_scale_run
    scaling = "autoscale" + (f": {run.results}" if run is not None and run.results else "")
    return PoolInfo(id=pool.id, backend="azure", state=state, nodes=infos,
                    target_nodes=(pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0),
                    address=f"{pool.vm_size}", detail=errors or (scaling if pool.enable_auto_scale else ""))


def resize(api: BatchApi, pool_id: str, dedicated: int, low_priority: int, timeout: float) -> None:
    pool = get(api, pool_id)
    if pool is None:
        raise NotFoundError(f"pool {pool_id!r} does not exist in Batch")
    if pool.enable_auto_scale:
        raise ConflictError(f"pool {pool_id!r} scales itself (autoscale)",
                            hint="change azure.autoscale in the pool file instead")
    options = m.BatchPoolResizeOptions(target_dedicated_nodes=dedicated, target_low_priority_nodes=low_priority)
    api.call(f"resizing pool {pool_id!r}", api.client.begin_resize_pool, pool_id, options, polling_interval=1)


def busy_tasks(api: BatchApi, pool_id: str) -> int:
    """Tasks running on the pool's nodes now."""
    return sum(n.running_tasks_count or 0 for n in nodes_of(api, pool_id))


def delete(api: BatchApi, pool_id: str, timeout: float, progress: ProgressFn | None) -> None:
    """Delete the pool and wait until Batch no longer has it."""
    try:
        api.call(f"deleting pool {pool_id!r}", api.client.begin_delete_pool, pool_id, polling_interval=1)
    except NotFoundError:
        return
    except ConflictError:  # 409 PoolBeingDeleted: a delete is already under way; wait for it below
        pass
    if progress:
        progress(f"waiting for Batch to remove pool {pool_id!r}")
    deadline, pause = time.monotonic() + timeout, POLL_MIN
    try:
        while get(api, pool_id) is not None:
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"pool {pool_id!r} was still being deleted after {timeout:g}s",
                                       hint="Azure goes on deleting it; `orch pool list` shows when it is gone")
            time.sleep(pause)
            pause = min(POLL_MAX, pause * 1.5)
    except KeyboardInterrupt:
        raise InterruptedByUser(f"stopped waiting; Azure goes on deleting pool {pool_id!r}",
                                hint="run `orch pool delete` again to wait for it") from None
