"""Reserve one bundle per pool node with a strict-spread placement group, and explain failures.

Ray leaves an unsatisfiable placement group pending without a word; orch waits with a timeout
and then says what the cluster lacks, node by node.
"""
from __future__ import annotations

import ray
from orchestrator.errors import CapacityError
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    remove_placement_group,
)

PG_PREFIX = "orch-pool-"


def reserve(pool_id: str, nodes: int, cpus: float, gpus: int, *, timeout: float) -> PlacementGroup:
    """The pool's placement group (reused if it exists), ready, or ``CapacityError``."""
    name = PG_PREFIX + pool_id
    try:
        group = ray.util.get_placement_group(name)
    except ValueError:
        bundle: dict[str, float] = {"CPU": cpus}
        if gpus:
            bundle["GPU"] = float(gpus)
        group = placement_group([dict(bundle) for _ in range(nodes)], strategy="STRICT_SPREAD", name=name,
                                lifetime="detached")
    ready, _ = ray.wait([group.ready()], timeout=timeout)
    if not ready:
        message = shortfall(nodes, cpus, gpus)
        remove_placement_group(group)
        raise CapacityError(message, hint="lower nodes / cpus_per_node / gpus_per_node, or add nodes to the cluster")
    return group


def release(pool_id: str) -> None:
    try:
        remove_placement_group(ray.util.get_placement_group(PG_PREFIX + pool_id))
    except ValueError:
        pass


def shortfall(nodes: int, cpus: float, gpus: int) -> str:
    """Why ``nodes`` distinct nodes with ``cpus`` CPUs and ``gpus`` GPUs free cannot be found."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    available = ray.available_resources()  # cluster-wide; per node below from totals
    lines = []
    fitting = 0
    for node in alive:
        res = node.get("Resources", {})
        ok = res.get("CPU", 0) >= cpus and res.get("GPU", 0) >= gpus
        fitting += ok
        lines.append(f"  {node.get('NodeManagerAddress')} ({node['NodeID'][:8]}): "
                     f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU{'' if ok else '  (too small)'}")
    return (f"the pool needs {nodes} distinct node(s) with {cpus:g} CPU and {gpus} GPU each, but the cluster "
            f"has {len(alive)} alive node(s), {fitting} big enough (free now: {available.get('CPU', 0):g} CPU, "
            f"{available.get('GPU', 0):g} GPU):\n" + "\n".join(lines))
