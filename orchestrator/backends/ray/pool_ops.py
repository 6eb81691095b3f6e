"""Pool lifecycle on Ray: start the local cluster (or use ``address``), reserve nodes, start the
node agents and the pool manager, resize, and tear all of it down.

Every step converges: re-running after a crash reuses what exists (named detached actors,
the named placement group, the recorded local cluster) and creates only what is missing.
"""
from __future__ import annotations

import time
from typing import Any

import ray
from orchestrator.backend import ProgressFn
from orchestrator.backends.ray import local_cluster, orphans, placement
from orchestrator.backends.ray.agent import NodeAgent
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.backends.ray.connection import NAMESPACE, connect, ray_errors
from orchestrator.backends.ray.cost_keeper import CostSettings
from orchestrator.backends.ray.ledger import ledger_dir
from orchestrator.backends.ray.manager import CONCURRENCY_GROUPS, PoolManager
from orchestrator.backends.ray.messages import AgentFacts
from orchestrator.backends.ray.spec import RayOptions
from orchestrator.errors import BackendError, ConflictError
from orchestrator.records import pool_records
from orchestrator.records.home import orch_home
from orchestrator.spec.pool import PoolSpec
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


def manager_name(pool_id: str) -> str:
    return f"orch-manager-{pool_id}"


def agent_name(pool_id: str, index: int) -> str:
    return f"orch-agent-{pool_id}-{index}"


def _say(progress: ProgressFn | None, text: str) -> None:
    if progress:
        progress(text)


def create(spec: PoolSpec, progress: ProgressFn | None) -> ClusterRecord:
    """Bring the pool up (see module docstring). On failure, removes what this call started."""
    cluster = ClusterRecord.of(pool_records.require(spec.id))
    options = spec.options(RayOptions)
    started_now = False
    if options.address:
        cluster.address, cluster.token_file = options.address, options.auth_token_file
    elif not cluster.started_cluster or not local_cluster.cluster_processes(cluster.node_marks()[:1]):
        if cluster.started_cluster:  # the head is gone (say, the machine restarted): what is left is useless
            local_cluster.stop(cluster.node_marks())
        _say(progress, f"starting a local Ray cluster of {spec.nodes.dedicated} node(s)")
        local = local_cluster.start(pool_records.pool_state_dir(spec.id), spec.nodes.dedicated, spec.cpus_per_node,
                                    spec.gpus_per_node, timeout=options.startup_timeout, expose=options.expose)
        cluster.address, cluster.token_file, cluster.temp_dir = local.address, local.token_file, local.temp_dir
        cluster.set_node_marks(list(local.nodes))
        cluster.started_cluster, cluster.exposed, started_now = True, options.expose, True
        cluster.stopped_at = None
    cluster.save()
    connected = False
    try:
        connect(cluster.address or "auto", cluster.token_file, pool_id=spec.id, loopback=cluster.loopback)
        connected = True
        _wait_for_nodes(spec, cluster, options.startup_timeout)
        _say(progress, "reserving nodes")
        facts = start_agents(spec, cluster, progress)
        _say(progress, "starting the pool manager")
        start_manager(spec, facts, cluster)
    except BaseException:
        if started_now:
            teardown(cluster, spec)
        if started_now or not (connected or cluster.started_cluster):
            cluster.clear()  # nothing of this pool runs: nothing to clean up later
        raise
    return cluster


def _wait_for_nodes(spec: PoolSpec, cluster: ClusterRecord, timeout: float) -> None:
    if not cluster.started_cluster:
        return
    deadline = time.monotonic() + timeout
    while sum(1 for n in ray.nodes() if n.get("Alive")) < spec.nodes.dedicated:
        if time.monotonic() > deadline:
            raise BackendError(f"the local cluster did not show {spec.nodes.dedicated} nodes in {timeout:g}s")
        time.sleep(0.2)


def start_agents(spec: PoolSpec, cluster: ClusterRecord, progress: ProgressFn | None) -> list[AgentFacts]:
    """One agent per bundle of the pool's strict-spread placement group; runs the start task."""
    group = placement.reserve(spec.id, spec.nodes.dedicated, spec.cpus_per_node, spec.gpus_per_node,
                              timeout=min(60.0, spec.options(RayOptions).startup_timeout))
    remote_agent = ray.remote(NodeAgent)
    handles = []
    for index in range(spec.nodes.dedicated):
        root = str(pool_records.pool_state_dir(spec.id) / "nodes" / str(index)) if cluster.started_cluster \
            else f"/tmp/orch-nodes/{spec.id}/{index}"
        strategy = PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=index)
        handles.append(remote_agent.options(
            name=agent_name(spec.id, index), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            num_cpus=spec.cpus_per_node, num_gpus=spec.gpus_per_node, max_concurrency=64,
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


HEAD_RESOURCE = "node:__internal_head__"
"""The resource Ray gives only the head node: the manager runs there, next to its journal."""


def start_manager(spec: PoolSpec, facts: list[AgentFacts], cluster: ClusterRecord) -> Any:
    """Start (or keep) the pool manager on the head node; Ray restarts it if its process dies, and
    it resumes from its journal (the pool's state dir for a cluster orch started)."""
    pool_id = spec.id
    names = [agent_name(pool_id, f.index) for f in facts]
    journal = str(pool_records.pool_state_dir(pool_id) / "manager") if cluster.started_cluster else None
    manager = ray.remote(concurrency_groups=CONCURRENCY_GROUPS)(PoolManager).options(
        name=manager_name(pool_id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=64, max_restarts=-1, max_task_retries=3, resources={HEAD_RESOURCE: 0.001},
    ).remote(pool_id, names, facts, NAMESPACE, journal, cost_settings(spec, cluster))
    with ray_errors("starting the pool manager"):
        ray.get(manager.set_nodes.remote(names, facts), timeout=120)
    return manager


def cost_settings(spec: PoolSpec, cluster: ClusterRecord) -> CostSettings:
    """What the manager needs to keep the pool's costs (``cost_keeper``): the spec's prices,
    limits and idle timeout; for a local cluster the ledger under ``$ORCH_HOME`` (kept after pool
    delete) and what its detached stopper needs."""
    local = cluster.started_cluster
    return CostSettings(price_per_node_hour=spec.price_per_node_hour, max_spend=spec.max_spend,
                        idle_timeout=spec.idle_timeout, autodelete=spec.autodelete,
                        created_at=pool_records.require(spec.id).created_at, local_cluster=local,
                        ledger_dir=str(ledger_dir(spec.id)) if local else None, address=cluster.address,
                        orch_home=str(orch_home()) if local else None)


def get_manager(pool_id: str) -> Any | None:
    try:
        return ray.get_actor(manager_name(pool_id), namespace=NAMESPACE)
    except ValueError:
        return None


def resize(spec: PoolSpec, old_nodes: int, progress: ProgressFn | None) -> ClusterRecord:
    """Bring an idle pool to ``spec.nodes.dedicated`` nodes; jobs and their history stay with the manager."""
    manager = get_manager(spec.id)
    if manager is not None and ray.get(manager.busy.remote(), timeout=30):
        raise ConflictError(f"pool {spec.id!r} has pending or running tasks", hint="wait for them, or cancel the jobs")
    cluster = ClusterRecord.of(pool_records.require(spec.id))
    _kill_agents(spec.id, old_nodes)
    placement.release(spec.id)
    if cluster.started_cluster:
        _resize_local_cluster(cluster, old_nodes, spec, progress)
    _wait_for_nodes(spec, cluster, spec.options(RayOptions).startup_timeout)
    facts = start_agents(spec, cluster, progress)
    start_manager(spec, facts, cluster)
    return cluster


def _resize_local_cluster(cluster: ClusterRecord, old: int, spec: PoolSpec, progress: ProgressFn | None) -> None:
    new = spec.nodes.dedicated
    if new > old:
        _say(progress, f"adding {new - old} node(s)")
        state_dir = pool_records.pool_state_dir(cluster.pool_id)
        for index in range(old, new):
            marks = local_cluster.start_node(index, cluster.address or "", spec.cpus_per_node, spec.gpus_per_node,
                                             cluster.temp_dir or "", cluster.token_file or "",
                                             state_dir / f"ray-start-{index}.log",
                                             timeout=spec.options(RayOptions).startup_timeout, expose=cluster.exposed)
            cluster.set_node_marks([*cluster.node_marks(), marks])
            cluster.save()
    elif new < old:
        _say(progress, f"removing {old - new} node(s)")
        local_cluster.stop(cluster.node_marks()[new:])
        cluster.set_node_marks(cluster.node_marks()[:new])
        cluster.save()


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


def teardown(cluster: ClusterRecord, spec: PoolSpec) -> None:
    """Kill agents (and their tasks), the manager and the placement group; stop a local cluster,
    then any task process a lost node left behind (recorded under its node root, pid and start
    time checked)."""
    if ray.is_initialized():
        _kill_agents(cluster.pool_id, spec.nodes.dedicated)
        manager = get_manager(cluster.pool_id)
        if manager is not None:
            ray.kill(manager, no_restart=True)
        placement.release(cluster.pool_id)
    if cluster.started_cluster:
        if ray.is_initialized():
            ray.shutdown()
        local_cluster.stop(cluster.node_marks())
        for root in sorted((pool_records.pool_state_dir(cluster.pool_id) / "nodes").glob("*")):
            orphans.kill_recorded(root)
        local_cluster.remove_temp_dir(pool_records.pool_state_dir(cluster.pool_id))
