"""Distributed launch plans: which argv and environment each node or rank of a task runs.

Pure: no Ray, Azure or click. Two launch styles are expressible, because backends differ:

* ``"launcher_on_head"``: one launcher (``horovodrun`` or ``mpirun``) on the head node
  reaches the other nodes over ssh; the other nodes run nothing (Azure Batch
  multi-instance tasks). ``torchrun`` has no such mode and always runs on every node.
* ``"per_node"``: no ssh; the backend starts something on every node itself (Ray).
  ``torchrun`` runs once per node; Horovod ranks are started one by one with Gloo
  rendezvous variables (:func:`rank_plans`, with the server from
  :mod:`orchestrator.backends.ray.horovod_rendezvous`).

Every plan's ``env`` holds only the variables orch adds; the backend overlays them on the
environment it would otherwise give the process. All of them carry the orch contract:
``ORCH_NODE_IPS`` (comma-separated, head first), ``ORCH_NODE_RANK``, ``ORCH_NUM_NODES``,
``ORCH_PROCS_PER_NODE`` and ``ORCH_GPUS_PER_NODE``. Under ``launcher_on_head`` the
launcher forwards the head's environment to remote ranks, so there ``ORCH_NODE_RANK`` is
the launcher's node (0); such ranks find their own place in the launcher's variables
(``HOROVOD_CROSS_RANK``, ``OMPI_COMM_WORLD_RANK``, ``PMI_RANK``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

from orchestrator.errors import CapacityError, SpecError
from orchestrator.spec.job import DistributedSpec

LaunchStyle = Literal["launcher_on_head", "per_node"]

LAUNCH_STYLES: tuple[str, ...] = ("launcher_on_head", "per_node")

SSHD_PORT = 23
"""Port of the sshd that orch's container images start for launcher-on-head MPI/Horovod."""

DEFAULT_MASTER_PORT = 29500
"""torchrun's customary rendezvous port; backends may pick another."""


@dataclass(frozen=True)
class LaunchPlan:
    """What one node runs: ``argv`` (None: nothing) with ``env`` overlaid.

    ``runs_on_every_node`` says whether every node runs its own plan (True) or only the
    head does (False).
    """

    argv: tuple[str, ...] | None
    env: Mapping[str, str]
    runs_on_every_node: bool


@dataclass(frozen=True)
class RankPlan:
    """One process the backend starts itself: its ranks, argv and added environment."""

    global_rank: int
    local_rank: int
    node_rank: int
    argv: tuple[str, ...]
    env: Mapping[str, str]


def resolve_num_nodes(spec: DistributedSpec, pool_nodes: int) -> int:
    """Nodes the task spans on a pool of ``pool_nodes``; CapacityError if the pool is smaller."""
    if spec.nodes == "pool":
        return pool_nodes
    if spec.nodes > pool_nodes:
        raise CapacityError(f"distributed.nodes is {spec.nodes} but the pool has {pool_nodes} node(s)",
                        hint="lower distributed.nodes, use nodes: pool, or resize the pool")
    return spec.nodes


def resolve_procs_per_node(spec: DistributedSpec, gpus_per_node: int) -> int:
    """Processes per node: the spec's value, else one per GPU, else 1."""
    if spec.processes_per_node is not None:
        return spec.processes_per_node
    return gpus_per_node if gpus_per_node > 0 else 1


def command_argv(command: Sequence[str] | str) -> tuple[str, ...]:
    """The user command as argv; a shell string runs as ``/bin/sh -c <command>``."""
    if isinstance(command, str):
        if not command.strip():
            raise SpecError("the task command is empty")
        return ("/bin/sh", "-c", command)
    argv = tuple(command)
    if not argv or not all(isinstance(part, str) for part in argv):
        raise SpecError("the task command must be a non-empty list of strings or a string")
    return argv


def host_slots(hosts: Sequence[str], procs_per_node: int) -> str:
    """``h1:k,h2:k``: the host list with slots, as horovodrun and Open MPI take it."""
    return ",".join(f"{host}:{procs_per_node}" for host in hosts)


def contract_env(hosts: Sequence[str], node_rank: int, procs_per_node: int,
                 gpus_per_node: int) -> dict[str, str]:
    """The ``ORCH_*`` variables every node and rank gets."""
    return {
        "ORCH_NODE_IPS": ",".join(hosts),
        "ORCH_NODE_RANK": str(node_rank),
        "ORCH_NUM_NODES": str(len(hosts)),
        "ORCH_PROCS_PER_NODE": str(procs_per_node),
        "ORCH_GPUS_PER_NODE": str(gpus_per_node),
    }


def plan(spec: DistributedSpec, hosts: Sequence[str], node_rank: int, procs_per_node: int,
         command: Sequence[str] | str, *, master_port: int = DEFAULT_MASTER_PORT,
         gpus_per_node: int = 0, style: LaunchStyle = "launcher_on_head") -> LaunchPlan:
    """The plan for node ``node_rank`` of ``hosts`` (head first).

    torchrun always runs on every node. Under ``launcher_on_head`` Horovod and MPI run
    their launcher on the head and nothing elsewhere. Under ``per_node`` Horovod ranks
    come from :func:`rank_plans` and MPI is refused (it needs ssh between nodes).
    """
    _check_placement(spec, hosts, node_rank, procs_per_node)
    argv = command_argv(command)
    env = contract_env(hosts, node_rank, procs_per_node, gpus_per_node)
    if style not in LAUNCH_STYLES:
        raise SpecError(f"unknown launch style {style!r}", hint=f"use one of: {', '.join(LAUNCH_STYLES)}")
    if spec.launcher == "torchrun":
        return _torchrun_plan(hosts, node_rank, procs_per_node, argv, env, master_port)
    if style == "per_node":
        if spec.launcher == "horovod":
            raise SpecError("Horovod without ssh starts each rank itself",
                            hint="the backend should call orchestrator.launch.rank_plans")
        raise SpecError("launcher mpi needs ssh between nodes, which this backend does not provide",
                        hint="use launcher horovod or torchrun on this backend")
    env["ORCH_MPI_HOSTS"] = host_slots(hosts, procs_per_node)
    if node_rank != 0:
        return LaunchPlan(argv=None, env=env, runs_on_every_node=False)
    if spec.launcher == "horovod":
        launcher_argv = horovodrun_argv(spec, len(hosts), procs_per_node, env["ORCH_MPI_HOSTS"])
    else:
        launcher_argv = mpirun_argv(spec, len(hosts), procs_per_node,
                                    host_slots_list=env["ORCH_MPI_HOSTS"],
                                    host_list=",".join(hosts), forwarded=tuple(env))
        env.update(mpi_runtime_env(spec))
    return LaunchPlan(argv=launcher_argv + argv, env=env, runs_on_every_node=False)


def horovodrun_argv(spec: DistributedSpec, num_nodes: int, procs_per_node: int,
                    host_slots_list: str) -> tuple[str, ...]:
    """``horovodrun -np N -H h1:k,…`` with Gloo, or with ``--mpi`` when the spec names MPI."""
    argv = ["horovodrun", "-np", str(num_nodes * procs_per_node), "-H", host_slots_list]
    if spec.uses_mpi:
        argv.append("--mpi")
        if spec.mpi_options:
            argv.append("--mpi-args=" + " ".join(spec.mpi_options))
    else:
        argv.append("--gloo")
    return tuple(argv)


def mpirun_argv(spec: DistributedSpec, num_nodes: int, procs_per_node: int, *,
                host_slots_list: str, host_list: str,
                forwarded: Sequence[str] = ()) -> tuple[str, ...]:
    """``mpirun`` for the spec's runtime, N = nodes × k, user options last.

    Open MPI takes ``host_slots_list`` (``h1:k,…``) and, since it does not forward the
    environment by itself, ``-x NAME`` for each name in ``forwarded``; MPICH and Intel MPI
    (Hydra) take ``host_list`` (``h1,…``) and forward everything already.
    """
    total = str(num_nodes * procs_per_node)
    if spec.runtime == "openmpi":
        argv = ["mpirun", "--host", host_slots_list, "-np", total,
                "--map-by", f"ppr:{procs_per_node}:node"]
        for name in forwarded:
            argv += ["-x", name]
    else:
        argv = ["mpirun", "-hosts", host_list, "-ppn", str(procs_per_node), "-n", total]
    return tuple(argv) + spec.mpi_options


def mpi_runtime_env(spec: DistributedSpec) -> dict[str, str]:
    """Variables the MPI runtime itself needs: Open MPI refuses root in containers without these."""
    if spec.runtime == "openmpi":
        return {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    return {}


def torchrun_argv(num_nodes: int, procs_per_node: int, node_rank: int | str, master_addr: str,
                  master_port: int) -> tuple[str, ...]:
    """``torchrun`` for one node; ``--no-python`` because the command is a full argv.

    ``node_rank`` may be a word the caller substitutes later (a shell variable).
    """
    return ("torchrun", "--nnodes", str(num_nodes), "--nproc_per_node", str(procs_per_node),
            "--node_rank", str(node_rank), "--master_addr", master_addr,
            "--master_port", str(master_port), "--no-python")


def _torchrun_plan(hosts: Sequence[str], node_rank: int, procs_per_node: int,
                   argv: tuple[str, ...], env: dict[str, str], master_port: int) -> LaunchPlan:
    env.update({
        "MASTER_ADDR": hosts[0],
        "MASTER_PORT": str(master_port),
        "WORLD_SIZE": str(len(hosts) * procs_per_node),
    })
    launcher = torchrun_argv(len(hosts), procs_per_node, node_rank, hosts[0], master_port)
    return LaunchPlan(argv=launcher + argv, env=env, runs_on_every_node=True)


def rank_plans(spec: DistributedSpec, hosts: Sequence[str], procs_per_node: int,
               command: Sequence[str] | str, rendezvous_addr: str, rendezvous_port: int, *,
               gpus_per_node: int = 0, network_interface: str | None = None) -> list[RankPlan]:
    """Every rank of a per-node launch, in global-rank order (rank = node × k + local).

    Horovod: the Gloo rendezvous variables horovodrun would set, against a server at
    ``rendezvous_addr:rendezvous_port`` started by
    :func:`orchestrator.backends.ray.horovod_rendezvous.start_rendezvous_server` for the same hosts and
    k. torchrun: the variables torchrun sets per worker, with the master at the address.
    ``network_interface`` pins Gloo (and NCCL's socket transport) to one interface.
    """
    _check_placement(spec, hosts, 0, procs_per_node)
    if spec.launcher == "mpi":
        raise SpecError("launcher mpi starts its ranks with mpirun, not one by one",
                        hint="use plan(..., style='launcher_on_head') on a backend with ssh")
    argv = command_argv(command)
    host_ids = horovod_host_ids(hosts)
    plans = []
    for node_rank in range(len(hosts)):
        node_env = contract_env(hosts, node_rank, procs_per_node, gpus_per_node)
        for local_rank in range(procs_per_node):
            global_rank = node_rank * procs_per_node + local_rank
            env = dict(node_env)
            if spec.launcher == "horovod":
                env.update(_horovod_rank_env(host_ids[node_rank], global_rank, local_rank,
                                             node_rank, len(hosts), procs_per_node,
                                             rendezvous_addr, rendezvous_port))
                if network_interface:
                    env["HOROVOD_GLOO_IFACE"] = network_interface
            else:
                env.update(_torch_rank_env(global_rank, local_rank, node_rank, len(hosts),
                                           procs_per_node, rendezvous_addr, rendezvous_port))
            if network_interface:
                env["NCCL_SOCKET_IFNAME"] = network_interface
            plans.append(RankPlan(global_rank, local_rank, node_rank, argv, env))
    return plans


def horovod_host_ids(hosts: Sequence[str]) -> list[str]:
    """Names Horovod's rendezvous knows the nodes by: the hosts, made unique if repeated.

    Several nodes can share one address (simulated multi-node clusters on one machine);
    Horovod keys its per-node rendezvous scope by this name, so it must differ per node.
    """
    if len(set(hosts)) == len(hosts):
        return list(hosts)
    return [f"{host}-node{index}" for index, host in enumerate(hosts)]


def _horovod_rank_env(host_id: str, global_rank: int, local_rank: int, node_rank: int,
                      num_nodes: int, procs_per_node: int, rendezvous_addr: str,
                      rendezvous_port: int) -> dict[str, str]:
    return {
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": rendezvous_addr,
        "HOROVOD_GLOO_RENDEZVOUS_PORT": str(rendezvous_port),
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_HOSTNAME": host_id,
        "HOROVOD_RANK": str(global_rank),
        "HOROVOD_SIZE": str(num_nodes * procs_per_node),
        "HOROVOD_LOCAL_RANK": str(local_rank),
        "HOROVOD_LOCAL_SIZE": str(procs_per_node),
        "HOROVOD_CROSS_RANK": str(node_rank),
        "HOROVOD_CROSS_SIZE": str(num_nodes),
        "PYTHONUNBUFFERED": "1",
    }


def _torch_rank_env(global_rank: int, local_rank: int, node_rank: int, num_nodes: int,
                    procs_per_node: int, master_addr: str, master_port: int) -> dict[str, str]:
    world_size = str(num_nodes * procs_per_node)
    return {
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "WORLD_SIZE": world_size,
        "RANK": str(global_rank),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(procs_per_node),
        "GROUP_RANK": str(node_rank),
        "GROUP_WORLD_SIZE": str(num_nodes),
        "ROLE_NAME": "default",
        "ROLE_RANK": str(global_rank),
        "ROLE_WORLD_SIZE": world_size,
    }


def _check_placement(spec: DistributedSpec, hosts: Sequence[str], node_rank: int,
                     procs_per_node: int) -> None:
    if not hosts:
        raise SpecError("a distributed launch needs at least one host")
    if spec.nodes != "pool" and len(hosts) != spec.nodes:
        raise SpecError(f"distributed.nodes is {spec.nodes} but {len(hosts)} host(s) were given")
    if isinstance(procs_per_node, bool) or not isinstance(procs_per_node, int) or procs_per_node < 1:
        raise SpecError(f"processes per node must be >= 1, got {procs_per_node!r}")
    if not 0 <= node_rank < len(hosts):
        raise SpecError(f"node rank {node_rank} is outside 0..{len(hosts) - 1}")
