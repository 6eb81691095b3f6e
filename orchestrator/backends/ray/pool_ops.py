"""Pool lifecycle on Ray: start the local cluster (or use ``address``), reserve nodes, start the
node agents and the pool manager, resize, and tear all of it down.

Every step converges: re-running after a crash reuses what exists (named detached actors,
the named placement group, the recorded local cluster) and creates only what is missing.
"""
from __future__ import annotations

import time
from typing import Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from orchestrator.records import pool_records
from orchestrator.backend import ProgressFn
from orchestrator.backends.ray import local_cluster, placement
from orchestrator.backends.ray.agent import NodeAgent
from orchestrator.backends.ray.connection import NAMESPACE, connect, ray_errors
from orchestrator.backends.ray.manager import PoolManager
from orchestrator.backends.ray.messages import AgentFacts
from orchestrator.errors import BackendError, ConflictError
from orchestrator.records.pool_records import PoolRecord
from orchestrator.spec import PoolSpec


def manager_name(pool_id: str) -> str:
    return f"orch-manager-{pool_id}"


def agent_name(pool_id: str, index: int) -> str:
    return f"orch-agent-{pool_id}-{index}"


def _say(progress: ProgressFn | None, text: str) -> None:
    if progress:
        progress(text)


def create(spec: PoolSpec, progress: ProgressFn | None) -> PoolRecord:
    """Bring the pool up (see module docstring). On failure, removes what this call started."""
    record = pool_records.load(spec.id) or PoolRecord(id=spec.id, backend="ray", spec=spec.model_dump(mode="json"),
                                                      created_at=time.time())
    state_dir = pool_records.pool_state_dir(spec.id)
    started_now = False
    if spec.ray.address:
        record.address, record.token_file = spec.ray.address, spec.ray.auth_token_file
    elif not record.started_cluster or not local_cluster.cluster_processes(record.temp_dir, record.process_groups):
        _say(progress, f"starting a local Ray cluster of {spec.nodes.dedicated} node(s)")
        cluster = local_cluster.start(state_dir, spec.nodes.dedicated, spec.cpus_per_node, spec.gpus_per_node,
                                      timeout=spec.ray.startup_timeout)
        record.address, record.token_file, record.temp_dir = cluster.address, cluster.token_file, cluster.temp_dir
        record.process_groups, record.started_cluster, started_now = list(cluster.process_groups), True, True
    pool_records.save(record)
    try:
        connect(record.address or "auto", record.token_file, pool_id=spec.id)
        _wait_for_nodes(spec, record, spec.ray.startup_timeout)
        _say(progress, "reserving nodes")
        facts = start_agents(spec, record, progress)
        _say(progress, "starting the pool manager")
        start_manager(spec.id, facts)
    except BaseException:
        if started_now:
            teardown(record)
        raise
    record.state = "ready"
    pool_records.save(record)
    return record


def _wait_for_nodes(spec: PoolSpec, record: PoolRecord, timeout: float) -> None:
    if not record.started_cluster:
        return
    deadline = time.monotonic() + timeout
    while sum(1 for n in ray.nodes() if n.get("Alive")) < spec.nodes.dedicated:
        if time.monotonic() > deadline:
            raise BackendError(f"the local cluster did not show {spec.nodes.dedicated} nodes in {timeout:g}s")
        time.sleep(0.2)


def start_agents(spec: PoolSpec, record: PoolRecord, progress: ProgressFn | None) -> list[AgentFacts]:
    """One agent per bundle of the pool's strict-spread placement group; runs the start task."""
    group = placement.reserve(spec.id, spec.nodes.dedicated, spec.cpus_per_node, spec.gpus_per_node,
                              timeout=min(60.0, spec.ray.startup_timeout))
    remote_agent = ray.remote(NodeAgent)
    handles = []
    for index in range(spec.nodes.dedicated):
        root = str(pool_records.pool_state_dir(spec.id) / "nodes" / str(index)) if record.started_cluster \
            else f"/tmp/orch-nodes/{spec.id}/{index}"
        strategy = PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=index)
        handles.append(remote_agent.options(
            name=agent_name(spec.id, index), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            num_cpus=spec.cpus_per_node, num_gpus=spec.gpus_per_node, max_concurrency=1000,
            scheduling_strategy=strategy,
        ).remote(spec.id, index, root, spec.cpus_per_node, float(spec.gpus_per_node), spec.slots_per_node,
                 dict(spec.env), manager_name(spec.id), NAMESPACE))
    start = spec.start_task
    if start:
        _say(progress, "running the start task on every node")
    with ray_errors("starting node agents"):
        facts: list[AgentFacts] = ray.get([h.facts.remote(start.command if start else None,
                                                         dict(start.env) if start else None,
                                                         start.max_retries if start else 0) for h in handles])
    failed = [f for f in facts if f.start_task_exit not in (None, 0)]
    if failed and start and start.wait_for_success:
        first = failed[0]
        raise BackendError(f"the start task failed on {len(failed)} node(s); node {first.index} "
                           f"({first.address}) exited {first.start_task_exit} with stderr:\n{first.start_task_error}",
                           hint="fix start_task in the pool spec; nothing was kept")
    return facts


def start_manager(pool_id: str, facts: list[AgentFacts]) -> Any:
    names = [agent_name(pool_id, f.index) for f in facts]
    manager = ray.remote(PoolManager).options(
        name=manager_name(pool_id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=64,
    ).remote(pool_id, names, facts, NAMESPACE)
    with ray_errors("starting the pool manager"):
        ray.get(manager.set_nodes.remote(names, facts), timeout=60)
    return manager


def get_manager(pool_id: str) -> Any | None:
    try:
        return ray.get_actor(manager_name(pool_id), namespace=NAMESPACE)
    except ValueError:
        return None


def resize(spec: PoolSpec, record: PoolRecord, nodes: int, progress: ProgressFn | None) -> PoolRecord:
    """Change the node count of an idle pool; jobs and their history stay with the manager."""
    manager = get_manager(spec.id)
    if manager is not None and ray.get(manager.busy.remote(), timeout=30):
        raise ConflictError(f"pool {spec.id!r} has pending or running tasks", hint="wait for them, or cancel the jobs")
    old = spec.nodes.dedicated
    new_spec = spec.model_copy(update={"nodes": spec.nodes.model_copy(update={"dedicated": nodes})})
    _kill_agents(spec.id, old)
    placement.release(spec.id)
    if record.started_cluster:
        _resize_local_cluster(record, old, nodes, spec, progress)
    record.spec = new_spec.model_dump(mode="json")
    pool_records.save(record)
    _wait_for_nodes(new_spec, record, spec.ray.startup_timeout)
    facts = start_agents(new_spec, record, progress)
    start_manager(spec.id, facts)
    return record


def _resize_local_cluster(record: PoolRecord, old: int, new: int, spec: PoolSpec, progress: ProgressFn | None) -> None:
    if new > old:
        _say(progress, f"adding {new - old} node(s)")
        state_dir = pool_records.pool_state_dir(record.id)
        for index in range(old, new):
            args = local_cluster._node_args(index, record.address or "", 0, spec.cpus_per_node,
                                            spec.gpus_per_node, record.temp_dir or "")
            record.process_groups.append(local_cluster._ray_start(args, record.token_file or "",
                                                                  state_dir / f"ray-start-{index}.log",
                                                                  spec.ray.startup_timeout))
    elif new < old:
        _say(progress, f"removing {old - new} node(s)")
        for group in record.process_groups[new:]:
            local_cluster.stop(None, [group])
        record.process_groups = record.process_groups[:new]


def _kill_agents(pool_id: str, count: int) -> None:
    for index in range(count + 64):
        try:
            handle = ray.get_actor(agent_name(pool_id, index), namespace=NAMESPACE)
        except ValueError:
            if index >= count:
                break
            continue
        try:
            ray.get(handle.shutdown.remote(), timeout=30)
        except ray.exceptions.RayError:
            pass
        ray.kill(handle, no_restart=True)


def teardown(record: PoolRecord) -> None:
    """Kill agents (and their tasks), the manager and the placement group; stop a local cluster."""
    spec_nodes = int(record.spec.get("nodes", {}).get("dedicated", 1))
    if ray.is_initialized():
        _kill_agents(record.id, spec_nodes)
        manager = get_manager(record.id)
        if manager is not None:
            ray.kill(manager, no_restart=True)
        placement.release(record.id)
    if record.started_cluster:
        if ray.is_initialized():
            ray.shutdown()
        local_cluster.stop(record.temp_dir, record.process_groups)

