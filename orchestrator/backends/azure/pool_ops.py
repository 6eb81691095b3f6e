"""Batch pools: create (idempotent) and wait until usable, describe, resize, wake, delete.

Waiting polls the pool's allocation state and its nodes' states, reports changes through the
progress callback, and ends with an error instead of hanging: a node whose start task failed
(its ``startup/stderr.txt`` is quoted), resize errors (quota, capacity), or the timeout. Ctrl-C
during a wait leaves the pool as Azure has it and says how to resume.

A pool with an ``idle_timeout`` scales itself (``autostop``): it is resized, and woken for new
work, by enabling autoscale again with a formula of the new node counts and wake time. Batch
refuses that while the pool resizes and within 30 seconds of the last time; ``enable_autoscale``
tries again for as long as it is allowed to wait.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from azure.batch import models as m
from orchestrator.backends.azure import autostop, job_ops, naming, pool_model, vm_sizes
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
           through: Callable[[], None] | None = None) -> bool:
    """Create the pool unless Batch has it (True when created now); a pool with the same id but
    another spec is a conflict. ``through`` creates it another way than the data plane
    (``arm_pools`` for managed identities)."""
    existing = get(api, spec.id)
    if existing is None:
        try:
            if through is not None:
                through()
            else:
                api.call(f"creating pool {spec.id!r}", api.client.create_pool, options)
            return True
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
    return False


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


def fetch(api: BatchApi, pool_id: str) -> tuple[Any, list[Any]] | None:
    """The Batch pool and its nodes (none while it is being deleted); None when there is no pool."""
    pool = get(api, pool_id)
    if pool is None:
        return None
    return pool, nodes_of(api, pool_id) if text(pool.state) == "active" else []


def info(api: BatchApi, pool_id: str, spec: PoolSpec | None = None) -> PoolInfo | None:
    found = fetch(api, pool_id)
    return status(api, found[0], found[1], spec) if found is not None else None


def status(api: BatchApi, pool: Any, nodes: list[Any], spec: PoolSpec | None) -> PoolInfo:
    """The pool as Batch has it; for an autostop pool (``spec.idle_timeout``), whether it is
    stopped and when an idle one will stop."""
    pool_id = pool.id
    described = describe(pool, nodes)
    if spec is None or spec.idle_timeout is None or not pool.enable_auto_scale:
        return described
    if autostop.is_stopped(pool):
        return replace(described, state="stopped", detail=f"stopped after {spec.idle_timeout:g}s without work; "
                                                         "`orch jobs add` or `orch pool create` starts it again")
    quiet = quiet_since(api, pool_id, nodes, autostop.wake_of(pool.auto_scale_formula))
    if quiet is None or not nodes:
        return described
    return replace(described, stops_at=autostop.stops_at(pool, spec.idle_timeout, quiet))


def quiet_since(api: BatchApi, pool_id: str, nodes: list[Any], wake: datetime | None) -> float | None:
    """Since when the pool has had no active or running task (epoch seconds), or None while it has
    one: its last task's end, or when orch last woke it, whichever is later."""
    if any(n.running_tasks_count for n in nodes):
        return None
    last = wake.timestamp() if wake is not None else 0.0
    for job in api.listed("listing jobs", api.client.list_jobs):
        if job.pool_info is None or job.pool_info.pool_id != pool_id:
            continue
        info = job.execution_info
        if text(job.state) == "completed":
            last = max(last, info.end_time.timestamp() if info is not None and info.end_time else 0.0)
            continue
        tasks = api.listed(f"listing tasks of {job.id!r}", api.client.list_tasks, job.id,
                           select=["id", "state", "executionInfo", "dependsOn"])
        states = {t.id: job_ops.ended_state(t) for t in tasks}
        blocked = job_ops.blocked_by_failure(tasks, states)
        if any(text(t.state) != "completed" and t.id not in blocked for t in tasks):
            return None
        ends = [t.execution_info.end_time.timestamp() for t in tasks if t.execution_info and t.execution_info.end_time]
        last = max([last, *ends])
    return last or None


def autodelete(api: BatchApi, pool: Any, spec: PoolSpec) -> PoolInfo:
    """Delete an ``autodelete`` pool that autostop took to zero nodes (see ``autostop``: Batch itself
    can only stop it); Batch goes on deleting it without orch."""
    try:
        api.call(f"deleting pool {pool.id!r}", api.client.begin_delete_pool, pool.id, polling_interval=1)
    except (NotFoundError, ConflictError):  # gone, or being deleted already
        pass
    return PoolInfo(id=pool.id, backend="azure", state="deleting", address=pool.vm_size,
                    detail=f"autodelete: stopped after {spec.idle_timeout:g}s without work, now deleted; "
                           "`orch pool create` makes it again")



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
    shown = ";".join(f"{name}={value}" for name, value in autostop.results(pool).items() if not name.startswith("orch_"))
    scaling = "autoscale" + (f": {shown}" if shown else "")
    if run is not None and run.error is not None:
        scaling += f" (last evaluation failed: {run.error.code}: {run.error.message})"
    return PoolInfo(id=pool.id, backend="azure", state=state, nodes=infos,
                    target_nodes=(pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0),
                    address=f"{pool.vm_size}", detail=errors or (scaling if pool.enable_auto_scale else ""))


def resize(api: BatchApi, spec: PoolSpec, timeout: float) -> None:
    """Bring the pool to ``spec.nodes``: a resize, or for an autostop pool a new formula (woken now)."""
    pool_id, dedicated, low_priority = spec.id, spec.nodes.dedicated, spec.nodes.low_priority
    pool = get(api, pool_id)
    if pool is None:
        raise NotFoundError(f"pool {pool_id!r} does not exist in Batch")
    if spec.idle_timeout is not None and pool_model.azure_options(spec).autoscale is None:
        if not wake(api, spec, patience=timeout):
            raise WaitTimeoutError(f"Batch did not let orch change pool {pool_id!r}'s node counts within {timeout:g}s "
                                   "(it was resizing)", hint="run `orch pool resize` again")
        return
    if pool.enable_auto_scale:
        raise ConflictError(f"pool {pool_id!r} scales itself (autoscale)",
                            hint="change azure.autoscale in the pool file instead")
    options = m.BatchPoolResizeOptions(target_dedicated_nodes=dedicated, target_low_priority_nodes=low_priority)
    api.call(f"resizing pool {pool_id!r}", api.client.begin_resize_pool, pool_id, options, polling_interval=1)


def enable_autoscale(api: BatchApi, pool_id: str, formula: str, interval: float, *, patience: float) -> bool:
    """Give the pool ``formula`` (evaluated at once) and a new evaluation schedule of ``interval``;
    while Batch refuses (resizing; enabled less than 30 s ago) try again for ``patience`` seconds.
    True when Batch took it."""
    options = m.BatchPoolEnableAutoScaleOptions(auto_scale_formula=formula,
                                                auto_scale_evaluation_interval=timedelta(seconds=interval))
    deadline, pause = time.monotonic() + patience, 1.0
    while True:
        try:
            api.call(f"enabling autoscale on pool {pool_id!r}", api.client.enable_pool_auto_scale, pool_id, options)
            return True
        except ConflictError:
            if time.monotonic() + pause > deadline:
                return False
        time.sleep(pause)
        pause = min(POLL_MAX, pause * 1.5)


def wake(api: BatchApi, spec: PoolSpec, *, patience: float = 0.0) -> bool:
    """Give an autostop pool a new wake time (see ``autostop``): Batch evaluates its formula at once
    and allocates its nodes if it had stopped. True when Batch took it."""
    formula = pool_model.pool_formula(spec, _now())
    if formula is None:
        return False
    return enable_autoscale(api, spec.id, formula, pool_model.evaluation_interval(spec), patience=patience)


def needs_wake(api: BatchApi, spec: PoolSpec) -> bool:
    """Whether work coming to an autostop pool (``orch jobs add``, ``orch pool create``) should wake
    it: it stopped, its formula is not the one ``spec`` asks for, or its nodes are idle and more
    than half its idle time is gone (new work must not find it stopping under it)."""
    if spec.idle_timeout is None:
        return False
    pool = get(api, spec.id)
    if pool is None:
        return False
    current = pool.auto_scale_formula if pool.enable_auto_scale else None
    if autostop.is_stopped(pool) or not autostop.same_formula(current, pool_model.pool_formula(spec, _now())):
        return True
    woken = autostop.wake_of(current)
    if woken is not None and time.time() - woken.timestamp() < spec.idle_timeout / 2:
        return False
    return busy_tasks(api, spec.id) == 0


def wake_for_work(api: BatchApi, spec: PoolSpec) -> bool:
    """Wake the pool if work should (``needs_wake``), best effort: when Batch refuses now (the pool
    is resizing), its next evaluation sees the new tasks and starts it. True when woken."""
    return needs_wake(api, spec) and wake(api, spec)


def is_stopped(api: BatchApi, pool_id: str) -> bool:
    pool = get(api, pool_id)
    return pool is not None and autostop.is_stopped(pool)


def _now() -> datetime:
    return datetime.now(timezone.utc)


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
