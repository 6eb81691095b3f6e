"""Azure Batch multi-instance command lines for distributed tasks (pure; shell text only).

Batch runs the *coordination* command on every node of a multi-instance task, then the
*application* command on the primary only. Batch does not run command lines under a
shell, so both are ``/bin/sh -c '<script>'`` with every user-supplied word shell-quoted.
The node addresses are known only at run time: ``AZ_BATCH_HOST_LIST`` (comma-separated
IPs) and ``AZ_BATCH_MASTER_NODE`` (``ip:port`` of the primary). The scripts put the
primary first, check the node count and ``exec`` the launcher, so its exit status is the
task's:

* horovod: ``horovodrun -np N -H ip:k,… --gloo <cmd>`` (``--mpi`` with an mpi block);
* mpi: ``mpirun`` for the runtime, as :func:`orchestrator.launch.mpirun_argv` builds it;
* torchrun: Open MPI's ``mpirun`` starts one ``torchrun`` per node over ssh, each taking
  its node rank from ``OMPI_COMM_WORLD_RANK``.
"""
from __future__ import annotations

import shlex
from typing import Sequence

from orchestrator.errors import SpecError
from orchestrator.launch.plans import (
    DEFAULT_MASTER_PORT,
    SSHD_PORT,
    DistributedSpec,
    command_argv,
    horovodrun_argv,
    mpi_runtime_env,
    mpirun_argv,
    torchrun_argv,
)

SSHD_START_SCRIPT = "/usr/local/bin/orch-start-sshd"
"""Where orch's images install docker/entrypoint-sshd.sh."""

_SHELL_WORDS = {
    "@slots@": '"$slots"',
    "@ips@": '"$ips"',
    "@primary@": '"$MASTER_ADDR"',
    "@node_rank@": '"$ORCH_NODE_RANK"',
}
"""Placeholder argv words and the shell expansions they stand for in the scripts."""


def multi_instance_command(spec: DistributedSpec, procs_per_node: int,
                           command: Sequence[str] | str, *, num_nodes: int | None = None,
                           gpus_per_node: int = 0,
                           master_port: int = DEFAULT_MASTER_PORT) -> str:
    """The application command line of a multi-instance task (runs on the primary).

    ``num_nodes`` is the task's instance count; it is required when ``spec.nodes`` is
    ``"pool"`` and must agree with it otherwise. The script fails with a clear message if
    ``AZ_BATCH_HOST_LIST`` holds a different number of nodes.
    """
    nodes = _instance_count(spec, num_nodes)
    if isinstance(procs_per_node, bool) or not isinstance(procs_per_node, int) or procs_per_node < 1:
        raise SpecError(f"processes per node must be >= 1, got {procs_per_node!r}")
    user_argv = command_argv(command)
    contract = {
        "ORCH_NODE_IPS": "$ips", "ORCH_NODE_RANK": "0", "ORCH_NUM_NODES": str(nodes),
        "ORCH_PROCS_PER_NODE": str(procs_per_node), "ORCH_GPUS_PER_NODE": str(gpus_per_node),
        "ORCH_MPI_HOSTS": "$slots",
    }
    prelude = _host_prelude(nodes, procs_per_node)
    if spec.launcher == "horovod":
        launcher = horovodrun_argv(spec, nodes, procs_per_node, "@slots@")
        return _wrap(prelude, contract, launcher + user_argv)
    if spec.launcher == "mpi":
        launcher = mpirun_argv(spec, nodes, procs_per_node, host_slots_list="@slots@",
                               host_list="@ips@", forwarded=tuple(contract))
        return _wrap(prelude, {**contract, **mpi_runtime_env(spec)}, launcher + user_argv)
    return _wrap(prelude, *_torchrun_parts(nodes, procs_per_node, user_argv, contract,
                                           master_port))


def coordination_command(spec: DistributedSpec, *, in_container: bool,
                         ssh_port: int = SSHD_PORT) -> str:
    """The coordination command line (runs on every node before the application command).

    In orch's container images it starts sshd on ``ssh_port`` in the background (the
    launcher on the primary reaches the other containers through it) and returns once
    it listens. On plain nodes, Batch's own sshd serves; the command only checks that the
    launcher this node needs is installed, so a broken image fails before the job starts.
    """
    needed = {"horovod": ["horovodrun"], "mpi": ["mpirun"], "torchrun": ["torchrun", "mpirun"]}
    lines = ["set -eu"]
    if in_container:
        lines.append(f"{SSHD_START_SCRIPT} --port {int(ssh_port)}")
    for program in needed[spec.launcher]:
        lines.append(
            f'command -v {program} >/dev/null 2>&1 || '
            f'{{ echo "orch: {program} is not installed on $(hostname)" >&2; exit 127; }}')
    return "/bin/sh -c " + shlex.quote("; ".join(lines))


def _instance_count(spec: DistributedSpec, num_nodes: int | None) -> int:
    if spec.nodes == "pool":
        if num_nodes is None:
            raise SpecError("nodes: pool needs the pool's node count to build the command",
                            hint="pass num_nodes (the multi-instance task's instance count)")
        if num_nodes < 1:
            raise SpecError(f"a multi-instance task needs at least one node, got {num_nodes}")
        return num_nodes
    if num_nodes is not None and num_nodes != spec.nodes:
        raise SpecError(f"distributed.nodes is {spec.nodes} but {num_nodes} instances were asked for")
    return spec.nodes


def _host_prelude(nodes: int, procs_per_node: int) -> list[str]:
    """Shell lines that set ``ips`` (primary first) and ``slots`` (``ip:k`` each)."""
    missing = "orch: AZ_BATCH_HOST_LIST is not set; is this a multi-instance task?"
    return [
        "set -eu",
        f': "${{AZ_BATCH_HOST_LIST:?{missing}}}"',
        "IFS=,",
        "set -- $AZ_BATCH_HOST_LIST",
        "unset IFS",
        f'[ "$#" -eq {nodes} ] || {{ echo "orch: expected {nodes} node(s) in '
        f'AZ_BATCH_HOST_LIST, got $#: $AZ_BATCH_HOST_LIST" >&2; exit 1; }}',
        'primary="${AZ_BATCH_MASTER_NODE:-$1}"',
        'primary="${primary%%:*}"',
        'ips="$primary"',
        f'slots="$primary:{procs_per_node}"',
        f'for host in "$@"; do if [ "$host" != "$primary" ]; then '
        f'ips="$ips,$host"; slots="$slots,$host:{procs_per_node}"; fi; done',
    ]


def _shell_words(argv: Sequence[str]) -> str:
    """Quote argv for sh, turning placeholder words into double-quoted variables."""
    return " ".join(_SHELL_WORDS.get(word) or shlex.quote(word) for word in argv)


def _export_line(variables: dict[str, str]) -> str:
    """``export A=… B=…``; values starting with ``$`` are shell variables, others literals."""
    parts = []
    for name, value in variables.items():
        rendered = f'"{value}"' if value.startswith("$") else shlex.quote(value)
        parts.append(f"{name}={rendered}")
    return "export " + " ".join(parts)


def _wrap(prelude: list[str], env: dict[str, str], argv: Sequence[str]) -> str:
    lines = prelude + [_export_line(env), "exec " + _shell_words(argv)]
    return "/bin/sh -c " + shlex.quote("; ".join(lines))


def _torchrun_parts(nodes: int, procs_per_node: int, user_argv: Sequence[str],
                    contract: dict[str, str],
                    master_port: int) -> tuple[dict[str, str], list[str]]:
    """Env and argv that start one torchrun per node through Open MPI (node rank = MPI rank)."""
    per_node = torchrun_argv(nodes, procs_per_node, "@node_rank@", "@primary@", master_port)
    node_script = ('ORCH_NODE_RANK="$OMPI_COMM_WORLD_RANK"; export ORCH_NODE_RANK; exec '
                   + _shell_words(per_node + tuple(user_argv)))
    env = {name: value for name, value in contract.items()
           if name not in ("ORCH_NODE_RANK", "ORCH_MPI_HOSTS")}
    env.update({"MASTER_ADDR": "$primary", "MASTER_PORT": str(master_port),
                "WORLD_SIZE": str(nodes * procs_per_node)})
    launcher = ["mpirun", "--host", "@ips@", "-np", str(nodes), "--map-by", "ppr:1:node"]
    for name in env:
        launcher += ["-x", name]
    launcher += ["/bin/sh", "-c", node_script]
    return {**env, **mpi_runtime_env(DistributedSpec(launcher="mpi"))}, launcher
