"""Multi-node training on the real 2-node local Ray pool: Horovod and torchrun, fail fast."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backend import load_backend
from orchestrator.model import JobRef

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def orch(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "--config-dir", str(REPO), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def job_file(tmp_path: Path, source: Path, job_id: str) -> Path:
    """The example job, pointed at the test pool."""
    text = source.read_text().replace("pool: local", "pool: testpool")
    text = re.sub(r"^id: .*$", f"id: {job_id}", text, flags=re.M)
    path = tmp_path / source.name
    path.write_text(text)
    return path


def check_training(stdout: str) -> None:
    sums = re.findall(r"\[rank (\d)\] weights-checksum: (\w+)", stdout)
    assert sorted(r for r, _ in sums) == ["0", "1"], stdout
    assert len({s for _, s in sums}) == 1, "ranks ended with different weights"
    losses = [float(x) for x in re.findall(r"\[rank 0\] epoch \d+/\d+ loss ([\d.]+)", stdout)]
    assert len(losses) == 5 and losses[-1] < losses[0]
    accuracy = float(re.search(r"test_accuracy: ([\d.]+)", stdout).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.9


@pytest.mark.horovod
def test_horovod_example_trains_over_two_ranks(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    proc = orch(env, "jobs", "add", str(job_file(tmp_path, REPO / "jobs" / "horovod_digits.yaml", "hvd")), "--tail")
    assert proc.returncode == 0, proc.stderr
    check_training(proc.stdout)


def test_torchrun_example_trains_over_two_ranks(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    proc = orch(env, "jobs", "add", str(job_file(tmp_path, REPO / "jobs" / "torchrun_digits.yaml", "ddp")), "--tail")
    assert proc.returncode == 0, proc.stderr
    check_training(proc.stdout)


def test_every_rank_gets_the_contract_on_distinct_nodes(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    spec = tmp_path / "contract.yaml"
    spec.write_text("id: contract\npool: testpool\nworkdir: null\ntasks:\n  - id: show\n"
                    "    command: echo $ORCH_NODE_RANK/$ORCH_NUM_NODES $ORCH_PROCS_PER_NODE $RANK $WORLD_SIZE "
                    "$MASTER_ADDR $ORCH_NODE_INDEX ips=$ORCH_NODE_IPS\n"
                    "    distributed: {launcher: torchrun, nodes: pool}\n")
    proc = orch(env, "jobs", "add", str(spec), "--tail")
    assert proc.returncode == 0, proc.stderr
    lines = sorted(re.findall(r"\[rank \d\] (.*)", proc.stdout))
    assert [line.split()[:4] for line in lines] == [["0/2", "1", "0", "2"], ["1/2", "1", "1", "2"]]
    assert {line.split()[5] for line in lines} == {"0", "1"}  # two distinct pool nodes
    assert all(line.split()[6].count(",") == 1 for line in lines)


def test_a_failing_rank_fails_the_task_fast_and_frees_the_nodes(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    spec = tmp_path / "failing.yaml"
    spec.write_text("id: failing\npool: testpool\nworkdir: null\ntasks:\n  - id: train\n"
                    "    command: python -c \"import os,sys,time; r=int(os.environ['RANK']); time.sleep(1); "
                    "r == 1 and (print('rank one broke', file=sys.stderr), sys.exit(5)); time.sleep(300)\"\n"
                    "    distributed: {launcher: torchrun, nodes: 2}\n")
    started = time.monotonic()
    proc = orch(env, "jobs", "add", str(spec), "--tail")
    assert time.monotonic() - started < 60
    assert proc.returncode == 1
    task = load_backend("ray").list_tasks(JobRef("testpool", "failing"))[0]
    assert task.exit_code == 5 and "rank one broke" in (task.error or "")
    info = load_backend("ray").get_pool("testpool")
    assert info is not None and info.free_slots == 2
    leftovers = subprocess.run(["pgrep", "-f", "time.sleep\\(300\\)"], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""


def test_more_nodes_than_the_pool_is_a_capacity_error(pool_home: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    spec = tmp_path / "big.yaml"
    spec.write_text("id: big\npool: testpool\ntasks:\n  - command: 'true'\n"
                    "    distributed: {launcher: horovod, nodes: 3}\n")
    proc = orch(env, "jobs", "add", str(spec))
    assert proc.returncode == 6 and "asks 3 nodes" in proc.stderr
