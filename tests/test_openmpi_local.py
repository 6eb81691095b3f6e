"""A real Open MPI run on localhost (Debian's openmpi-bin, installed by .ci/run) of the mpirun
command line orch's launch plan generates: 2 processes, each seeing its rank and the orch contract."""
from __future__ import annotations

import os
import subprocess

import pytest

from orchestrator.launch.plans import plan
from orchestrator.spec.job import DistributedSpec

pytestmark = pytest.mark.slow


def test_generated_mpirun_runs_two_ranks_on_localhost() -> None:
    launch = plan(DistributedSpec(launcher="mpi", nodes=1, processes_per_node=2), ["localhost"], 0, 2,
                  'echo "rank=$OMPI_COMM_WORLD_RANK size=$OMPI_COMM_WORLD_SIZE nodes=$ORCH_NUM_NODES"')
    assert launch.argv is not None
    env = {**os.environ, **launch.env, "OMPI_MCA_plm_rsh_agent": "", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
    proc = subprocess.run(list(launch.argv), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split("\n")[:2]) == ["rank=0 size=2 nodes=1", "rank=1 size=2 nodes=1"]
