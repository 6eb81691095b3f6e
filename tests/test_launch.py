"""Golden tests for distributed launch plans, per-rank plans and Batch command lines."""
from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys

import pytest
from pydantic import ValidationError

from orchestrator.backends.azure.launch_commands import (
    coordination_command,
    multi_instance_command,
)
from orchestrator.errors import CapacityError, SpecError
from orchestrator.launch.plans import (
    SSHD_PORT,
    horovod_host_ids,
    plan,
    rank_plans,
    resolve_num_nodes,
    resolve_procs_per_node,
)
from orchestrator.spec.job import DistributedSpec

ONE = ["10.0.0.4"]
TWO = ["10.0.0.4", "10.0.0.5"]
CMD = ["python", "train.py", "--lr", "0.1"]
OPENMPI_X = ("-x", "ORCH_NODE_IPS", "-x", "ORCH_NODE_RANK", "-x", "ORCH_NUM_NODES",
             "-x", "ORCH_PROCS_PER_NODE", "-x", "ORCH_GPUS_PER_NODE", "-x", "ORCH_MPI_HOSTS")

def dist(launcher: str, *, mpi_runtime: str | None = None, mpi_options: tuple[str, ...] | list[str] = (),
         **fields: object) -> DistributedSpec:
    """The spec's ``distributed:`` block; an mpi block when a runtime or options are given."""
    mpi = {"runtime": mpi_runtime or "openmpi", "options": list(mpi_options)} if mpi_runtime or mpi_options else None
    return DistributedSpec.model_validate({"launcher": launcher, "mpi": mpi, **fields})


HEAD_CASES = [
    ("horovod", None, ONE, 1, ("horovodrun", "-np", "1", "-H", "10.0.0.4:1", "--gloo")),
    ("horovod", None, TWO, 4, ("horovodrun", "-np", "8", "-H", "10.0.0.4:4,10.0.0.5:4", "--gloo")),
    ("horovod", "openmpi", TWO, 1, ("horovodrun", "-np", "2", "-H", "10.0.0.4:1,10.0.0.5:1", "--mpi")),
    ("mpi", "openmpi", ONE, 1,
     ("mpirun", "--host", "10.0.0.4:1", "-np", "1", "--map-by", "ppr:1:node") + OPENMPI_X),
    ("mpi", "openmpi", TWO, 4,
     ("mpirun", "--host", "10.0.0.4:4,10.0.0.5:4", "-np", "8", "--map-by", "ppr:4:node") + OPENMPI_X),
    ("mpi", None, TWO, 4,
     ("mpirun", "--host", "10.0.0.4:4,10.0.0.5:4", "-np", "8", "--map-by", "ppr:4:node") + OPENMPI_X),
    ("mpi", "mpich", ONE, 1, ("mpirun", "-hosts", "10.0.0.4", "-ppn", "1", "-n", "1")),
    ("mpi", "mpich", TWO, 4, ("mpirun", "-hosts", "10.0.0.4,10.0.0.5", "-ppn", "4", "-n", "8")),
    ("mpi", "intelmpi", ONE, 1, ("mpirun", "-hosts", "10.0.0.4", "-ppn", "1", "-n", "1")),
    ("mpi", "intelmpi", TWO, 4, ("mpirun", "-hosts", "10.0.0.4,10.0.0.5", "-ppn", "4", "-n", "8")),
]


def contract(hosts: list[str], node_rank: int, k: int, gpus: int) -> dict[str, str]:
    return {"ORCH_NODE_IPS": ",".join(hosts), "ORCH_NODE_RANK": str(node_rank),
            "ORCH_NUM_NODES": str(len(hosts)), "ORCH_PROCS_PER_NODE": str(k),
            "ORCH_GPUS_PER_NODE": str(gpus)}


@pytest.mark.parametrize("launcher,runtime,hosts,k,launcher_argv", HEAD_CASES)
def test_launcher_on_head_plans(launcher, runtime, hosts, k, launcher_argv) -> None:
    spec = dist(launcher, nodes=len(hosts), mpi_runtime=runtime)
    head = plan(spec, hosts, 0, k, CMD, master_port=29500, gpus_per_node=k)
    assert head.argv == launcher_argv + tuple(CMD)
    assert not head.runs_on_every_node
    expected_env = contract(hosts, 0, k, k)
    expected_env["ORCH_MPI_HOSTS"] = ",".join(f"{host}:{k}" for host in hosts)
    if launcher == "mpi" and runtime in (None, "openmpi"):
        expected_env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    assert dict(head.env) == expected_env
    for node_rank in range(1, len(hosts)):
        other = plan(spec, hosts, node_rank, k, CMD, master_port=29500, gpus_per_node=k)
        assert other.argv is None and other.env["ORCH_NODE_RANK"] == str(node_rank)


def test_mpi_options_come_after_launcher_flags_and_before_the_command() -> None:
    spec = dist("mpi", nodes=2, mpi_runtime="mpich", mpi_options=("-genv", "FOO=1"))
    head = plan(spec, TWO, 0, 2, CMD, master_port=1)
    assert head.argv == ("mpirun", "-hosts", "10.0.0.4,10.0.0.5", "-ppn", "2", "-n", "4",
                         "-genv", "FOO=1", *CMD)
    horovod = dist("horovod", nodes=2, mpi_runtime="openmpi", mpi_options=("--bind-to", "none"))
    assert "--mpi-args=--bind-to none" in plan(horovod, TWO, 0, 1, CMD, master_port=1).argv
    from_list = dist("horovod", nodes=2, mpi_options=["--bind-to", "none"])
    assert from_list.mpi_options == ("--bind-to", "none") and from_list.uses_mpi


@pytest.mark.parametrize("hosts,k", [(ONE, 1), (ONE, 4), (TWO, 1), (TWO, 4)])
def test_torchrun_runs_on_every_node(hosts, k) -> None:
    spec = dist("torchrun", nodes=len(hosts))
    for node_rank in range(len(hosts)):
        node = plan(spec, hosts, node_rank, k, CMD, master_port=29400, style="per_node")
        assert node.runs_on_every_node
        assert node.argv == ("torchrun", "--nnodes", str(len(hosts)), "--nproc_per_node", str(k),
                             "--node_rank", str(node_rank), "--master_addr", "10.0.0.4",
                             "--master_port", "29400", "--no-python", *CMD)
        expected = contract(hosts, node_rank, k, 0)
        expected.update(MASTER_ADDR="10.0.0.4", MASTER_PORT="29400", WORLD_SIZE=str(len(hosts) * k))
        assert dict(node.env) == expected


def test_nodes_pool_takes_every_host_and_string_commands_run_under_sh() -> None:
    spec = dist("horovod", nodes="pool")
    hosts = ["a", "b", "c"]
    head = plan(spec, hosts, 0, 2, "python train.py --x 'a b'", master_port=1)
    assert head.argv == ("horovodrun", "-np", "6", "-H", "a:2,b:2,c:2", "--gloo",
                         "/bin/sh", "-c", "python train.py --x 'a b'")
    assert resolve_num_nodes(spec, 5) == 5
    assert resolve_num_nodes(dist("horovod", nodes=2), 5) == 2
    with pytest.raises(CapacityError):
        resolve_num_nodes(dist("horovod", nodes=3), 2)


def test_processes_per_node_defaults_to_gpus_then_one() -> None:
    assert resolve_procs_per_node(dist("torchrun"), 4) == 4
    assert resolve_procs_per_node(dist("torchrun"), 0) == 1
    assert resolve_procs_per_node(dist("torchrun", processes_per_node=2), 8) == 2


@pytest.mark.parametrize("fields,message", [
    ({"launcher": "horovod", "nodes": 0}, "nodes"),
    ({"launcher": "horovod", "nodes": "all"}, "nodes"),
    ({"launcher": "horovod", "processes_per_node": 0}, "processes_per_node"),
    ({"launcher": "torchrun", "mpi": {"options": ["-x", "A"]}}, "not torchrun"),
    ({"launcher": "torchrun", "mpi": {"runtime": "openmpi"}}, "not torchrun"),
    ({"launcher": "mpi", "mpi": {"runtime": "lam"}}, "runtime"),
    ({"launcher": "deepspeed"}, "launcher"),
])
def test_invalid_specs_are_refused_by_the_spec_model(fields, message) -> None:
    with pytest.raises(ValidationError, match=message):
        DistributedSpec.model_validate(fields)


def test_placement_errors() -> None:
    spec = dist("horovod", nodes=2)
    with pytest.raises(SpecError, match="2 but 1 host"):
        plan(spec, ONE, 0, 1, CMD, master_port=1)
    with pytest.raises(SpecError, match=">= 1"):
        plan(spec, TWO, 0, 0, CMD, master_port=1)
    with pytest.raises(SpecError, match="rank_plans"):
        plan(spec, TWO, 0, 1, CMD, master_port=1, style="per_node")
    with pytest.raises(SpecError, match="ssh"):
        plan(dist("mpi", nodes=2), TWO, 0, 1, CMD, master_port=1, style="per_node")
    with pytest.raises(SpecError, match="empty"):
        plan(spec, TWO, 0, 1, "  ", master_port=1)


def test_horovod_rank_plans_mirror_horovodrun_gloo_env() -> None:
    spec = dist("horovod", nodes=2)
    plans = rank_plans(spec, TWO, 2, CMD, "10.0.0.4", 4567, gpus_per_node=2, network_interface="eth0")
    assert [(p.global_rank, p.node_rank, p.local_rank) for p in plans] == [
        (0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1)]
    third = plans[2]
    assert third.argv == tuple(CMD)
    assert dict(third.env) == {
        **contract(TWO, 1, 2, 2),
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": "10.0.0.4", "HOROVOD_GLOO_RENDEZVOUS_PORT": "4567",
        "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_HOSTNAME": "10.0.0.5", "HOROVOD_RANK": "2", "HOROVOD_SIZE": "4",
        "HOROVOD_LOCAL_RANK": "0", "HOROVOD_LOCAL_SIZE": "2", "HOROVOD_CROSS_RANK": "1",
        "HOROVOD_CROSS_SIZE": "2", "PYTHONUNBUFFERED": "1", "HOROVOD_GLOO_IFACE": "eth0",
        "NCCL_SOCKET_IFNAME": "eth0"}


def test_torch_rank_plans_mirror_torchrun_worker_env() -> None:
    plans = rank_plans(dist("torchrun", nodes=2), TWO, 1, CMD, "10.0.0.4", 29500)
    assert {k: v for k, v in plans[1].env.items() if not k.startswith("ORCH_")} == {
        "MASTER_ADDR": "10.0.0.4", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "1",
        "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "1", "GROUP_WORLD_SIZE": "2",
        "ROLE_NAME": "default", "ROLE_RANK": "1", "ROLE_WORLD_SIZE": "2"}
    with pytest.raises(SpecError, match="mpirun"):
        rank_plans(dist("mpi", nodes=2), TWO, 1, CMD, "10.0.0.4", 1)


def test_horovod_host_ids_stay_unique_when_nodes_share_an_address() -> None:
    assert horovod_host_ids(TWO) == TWO
    assert horovod_host_ids(["127.0.0.1", "127.0.0.1"]) == ["127.0.0.1-node0", "127.0.0.1-node1"]


# --- Azure Batch multi-instance command lines, run by /bin/sh against stub launchers ---

STUB = """#!/bin/sh
printf 'argv:%s\\n' "$(basename "$0")"
for arg in "$@"; do printf 'arg:%s\\n' "$arg"; done
env | grep -E '^(ORCH_|MASTER_|WORLD_SIZE|OMPI_ALLOW)' | sort | sed 's/^/env:/'
"""


@pytest.fixture()
def stub_path(tmp_path: pathlib.Path) -> str:
    for name in ("horovodrun", "mpirun", "torchrun"):
        stub = tmp_path / name
        stub.write_text(STUB)
        stub.chmod(0o755)
    return f"{tmp_path}:{os.environ['PATH']}"


def run_batch_command(command_line: str, stub_path: str, hosts: str, master: str | None,
                      **extra_env: str) -> tuple[list[str], dict[str, str]]:
    env = {"PATH": stub_path, "AZ_BATCH_HOST_LIST": hosts, **extra_env}
    if master:
        env["AZ_BATCH_MASTER_NODE"] = master
    done = subprocess.run(shlex.split(command_line), env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    args = [line[4:] for line in lines if line.startswith("arg:")]
    seen_env = dict(line[4:].split("=", 1) for line in lines if line.startswith("env:"))
    return args, seen_env


def test_multi_instance_horovod_puts_primary_first_and_quotes_the_command(stub_path) -> None:
    spec = dist("horovod", nodes=2)
    command = multi_instance_command(spec, 4, ["python", "train.py", "--name", "it's a \"test\" $HOME"],
                                     gpus_per_node=4)
    assert command.startswith("/bin/sh -c ")
    args, env = run_batch_command(command, stub_path, "10.0.0.5,10.0.0.4", "10.0.0.4:6000")
    assert args == ["-np", "8", "-H", "10.0.0.4:4,10.0.0.5:4", "--gloo",
                    "python", "train.py", "--name", "it's a \"test\" $HOME"]
    assert env == {"ORCH_NODE_IPS": "10.0.0.4,10.0.0.5", "ORCH_NODE_RANK": "0",
                   "ORCH_NUM_NODES": "2", "ORCH_PROCS_PER_NODE": "4", "ORCH_GPUS_PER_NODE": "4",
                   "ORCH_MPI_HOSTS": "10.0.0.4:4,10.0.0.5:4"}


@pytest.mark.parametrize("runtime,expected", [
    ("openmpi", ["--host", "10.0.0.4:1,10.0.0.5:1,10.0.0.6:1", "-np", "3", "--map-by", "ppr:1:node",
                 *OPENMPI_X, "--bind-to", "none"]),
    ("mpich", ["-hosts", "10.0.0.4,10.0.0.5,10.0.0.6", "-ppn", "1", "-n", "3", "--bind-to", "none"]),
    ("intelmpi", ["-hosts", "10.0.0.4,10.0.0.5,10.0.0.6", "-ppn", "1", "-n", "3", "--bind-to", "none"]),
])
def test_multi_instance_mpi_per_runtime_with_pool_nodes(stub_path, runtime, expected) -> None:
    spec = dist("mpi", nodes="pool", mpi_runtime=runtime, mpi_options=("--bind-to", "none"))
    command = multi_instance_command(spec, 1, "./hello_mpi", num_nodes=3)
    args, env = run_batch_command(command, stub_path, "10.0.0.4,10.0.0.5,10.0.0.6", None)
    assert args == expected + ["/bin/sh", "-c", "./hello_mpi"]
    assert env["ORCH_NUM_NODES"] == "3"
    assert ("OMPI_ALLOW_RUN_AS_ROOT" in env) == (runtime == "openmpi")


def test_multi_instance_torchrun_starts_one_torchrun_per_node(stub_path) -> None:
    spec = dist("torchrun", nodes=2)
    command = multi_instance_command(spec, 4, ["python", "train.py"], master_port=29600)
    args, env = run_batch_command(command, stub_path, "10.0.0.4,10.0.0.5", "10.0.0.4:6000")
    assert args[:7] == ["--host", "10.0.0.4,10.0.0.5", "-np", "2", "--map-by", "ppr:1:node", "-x"]
    assert env["MASTER_ADDR"] == "10.0.0.4" and env["WORLD_SIZE"] == "8"
    node_argv = args[-3:]
    assert node_argv[:2] == ["/bin/sh", "-c"]
    node = subprocess.run(node_argv, env={"PATH": stub_path, "OMPI_COMM_WORLD_RANK": "1", **env},
                          capture_output=True, text=True, timeout=30)
    torchrun_args = [line[4:] for line in node.stdout.splitlines() if line.startswith("arg:")]
    assert torchrun_args == ["--nnodes", "2", "--nproc_per_node", "4", "--node_rank", "1",
                             "--master_addr", "10.0.0.4", "--master_port", "29600", "--no-python",
                             "python", "train.py"]
    assert "env:ORCH_NODE_RANK=1" in node.stdout


def test_multi_instance_rejects_a_wrong_host_count(stub_path) -> None:
    command = multi_instance_command(dist("horovod", nodes=2), 1, CMD)
    done = subprocess.run(shlex.split(command), env={"PATH": stub_path, "AZ_BATCH_HOST_LIST": "10.0.0.4"},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "expected 2 node(s)" in done.stderr
    with pytest.raises(SpecError, match="num_nodes"):
        multi_instance_command(dist("horovod", nodes="pool"), 1, CMD)
    with pytest.raises(SpecError, match="instances"):
        multi_instance_command(dist("horovod", nodes=2), 1, CMD, num_nodes=3)


def test_coordination_command_checks_launchers_and_starts_sshd(stub_path, tmp_path) -> None:
    native = coordination_command(dist("horovod", nodes=2), in_container=False)
    assert subprocess.run(shlex.split(native), env={"PATH": stub_path}, timeout=30).returncode == 0
    missing = subprocess.run(shlex.split(native), env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 127 and "horovodrun is not installed" in missing.stderr
    container = coordination_command(dist("mpi", nodes=2), in_container=True)
    assert f"/usr/local/bin/orch-start-sshd --port {SSHD_PORT}" in shlex.split(container)[2]


@pytest.mark.horovod
def test_rank_plans_run_horovod_over_gloo_with_orch_rendezvous() -> None:
    from orchestrator.backends.ray.horovod_rendezvous import start_rendezvous_server

    hosts = ["127.0.0.1", "127.0.0.1"]
    code = ("import torch, horovod.torch as hvd; hvd.init(); "
            "t = hvd.allreduce(torch.tensor([float(hvd.rank() + 1)]), op=hvd.Sum); "
            "print('result', hvd.rank(), hvd.size(), hvd.local_rank(), hvd.cross_rank(), int(t.item()))")
    spec = dist("horovod", nodes=2)
    with start_rendezvous_server(hosts, 2) as server:
        plans = rank_plans(spec, hosts, 2, [sys.executable, "-c", code], "127.0.0.1", server.port)
        procs = [subprocess.Popen(p.argv, env={**os.environ, **p.env}, stdout=subprocess.PIPE, text=True)
                 for p in plans]
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0]
    results = sorted(line for out in outputs for line in out.splitlines() if line.startswith("result"))
    assert results == ["result 0 4 0 0 10", "result 1 4 1 0 10", "result 2 4 0 1 10", "result 3 4 1 1 10"]
