"""jobs/train_digits.py: accuracy, metrics, resume, and identical weights across ranks."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "jobs" / "train_digits.py"
RUN_TIMEOUT = 300


def run_training(args: list[str], task_dir: pathlib.Path, launcher: list[str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("HOROVOD_", "OMPI_", "PMI_")) and name not in ("RANK", "WORLD_SIZE")}
    env.update(ORCH_TASK_DIR=str(task_dir), ORCH_METRICS_FILE=str(task_dir / "metrics.jsonl"))
    command = (launcher or [sys.executable]) + [str(SCRIPT), *args]
    done = subprocess.run(command, env=env, cwd=task_dir, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def checksums(output: str) -> list[str]:
    return re.findall(r"weights-checksum: ([0-9a-f]{64})", output)


def final_test_accuracy(output: str) -> float:
    return float(re.search(r"test_accuracy: ([0-9.]+)", output).group(1))


def metric_lines(task_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (task_dir / "metrics.jsonl").read_text().splitlines()]


def test_single_process_learns_digits_and_reports_each_epoch(tmp_path) -> None:
    done = run_training(["--epochs", "5", "--seed", "0"], tmp_path)
    assert final_test_accuracy(done.stdout) >= 0.9
    assert len(checksums(done.stdout)) == 1
    lines = metric_lines(tmp_path)
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert {"loss", "val_accuracy", "samples_per_sec"} <= set(lines[-1])
    assert lines[-1]["val_accuracy"] >= 0.9
    assert (tmp_path / "checkpoint.pt").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_continues_after_the_last_finished_epoch(tmp_path) -> None:
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight_dir.mkdir()
    resumed_dir.mkdir()
    straight = run_training(["--epochs", "3"], straight_dir)
    first = run_training(["--epochs", "2"], resumed_dir)
    assert "resuming" not in first.stdout
    second = run_training(["--epochs", "3"], resumed_dir)
    assert "resuming from epoch 2" in second.stdout
    assert "epoch 1/3" not in second.stdout and "epoch 3/3" in second.stdout
    assert [line["step"] for line in metric_lines(resumed_dir)] == [1, 2, 3]
    assert checksums(second.stdout) == checksums(straight.stdout)
    again = run_training(["--epochs", "3"], resumed_dir)
    assert "epoch " not in again.stdout.replace("resuming from epoch", "")
    assert checksums(again.stdout) == checksums(straight.stdout)


def test_training_is_deterministic_and_reads_npz_directories(tmp_path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    half = len(digits.images) // 2
    np.savez(data_dir / "a.npz", x=digits.images[:half], y=digits.target[:half])
    np.savez(data_dir / "b.npz", x=digits.data[half:], y=digits.target[half:])
    runs = []
    for attempt in ("one", "two"):
        task_dir = tmp_path / attempt
        task_dir.mkdir()
        runs.append(run_training(["--data", str(data_dir), "--epochs", "5", "--checkpoint", ""], task_dir))
    assert checksums(runs[0].stdout) == checksums(runs[1].stdout)
    assert final_test_accuracy(runs[0].stdout) >= 0.9


@pytest.mark.slow
def test_torchrun_two_ranks_end_with_identical_weights(tmp_path) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    done = run_training(["--epochs", "5"], tmp_path, launcher=launcher)
    sums = checksums(done.stdout)
    assert len(sums) == 2 and sums[0] == sums[1]
    assert final_test_accuracy(done.stdout) >= 0.9
    assert [line["step"] for line in metric_lines(tmp_path)] == [1, 2, 3, 4, 5]


@pytest.mark.horovod
def test_horovodrun_two_ranks_end_with_identical_weights(tmp_path) -> None:
    horovodrun = str(pathlib.Path(sys.executable).parent / "horovodrun")
    launcher = [horovodrun, "-np", "2", "-H", "localhost:2", "--gloo", sys.executable]
    done = run_training(["--epochs", "5"], tmp_path, launcher=launcher)
    sums = checksums(done.stdout)
    assert len(sums) == 2 and sums[0] == sums[1]
    assert final_test_accuracy(done.stdout) >= 0.9
    assert [line["step"] for line in metric_lines(tmp_path)] == [1, 2, 3, 4, 5]
