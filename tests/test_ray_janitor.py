"""A deleted job's files on a node: moved aside at once, removed only while the node is idle."""
from __future__ import annotations

import time
from pathlib import Path

from orchestrator.backends.ray import task_files
from orchestrator.backends.ray.janitor import Janitor


def _job_files(root: Path, job_id: str, tasks: int) -> None:
    for index in range(tasks):
        task = task_files.task_root(root, job_id, f"t{index}")
        (task / "wd").mkdir(parents=True)
        (task / "stdout.txt").write_text("out\n")
        (task / "wd" / "link").symlink_to(root / "elsewhere")  # links go, what they point at stays


def test_a_retired_job_is_out_of_the_way_at_once_and_removed_when_idle(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    _job_files(tmp_path, "old", 3)
    busy = [True]
    janitor = Janitor(tmp_path, lambda: not busy[0])
    moved = task_files.retire_job(tmp_path, "old")
    assert moved is not None and moved.is_dir() and not (tmp_path / "jobs" / "old").exists()
    assert task_files.retire_job(tmp_path, "old") is None, "nothing left to retire"
    assert janitor.sweep() == 0 and moved.is_dir(), "a busy node keeps its trash"
    assert not janitor.wake.is_set(), "and is looked at again later, not at once (no spinning)"
    busy[0] = False
    assert janitor.sweep() == 1 and not moved.exists()
    assert (tmp_path / "elsewhere").is_dir()


def test_the_janitor_stops_between_folders_when_work_comes_in(tmp_path: Path) -> None:
    for job in ("a", "b", "c"):
        _job_files(tmp_path, job, 1)
        task_files.retire_job(tmp_path, job)
    answers = iter([True, False])
    janitor = Janitor(tmp_path, lambda: next(answers, False))
    assert janitor.sweep() == 1 and len(list((tmp_path / task_files.TRASH).iterdir())) == 2


def test_a_started_janitor_empties_the_trash_by_itself(tmp_path: Path) -> None:
    _job_files(tmp_path, "old", 2)
    task_files.retire_job(tmp_path, "old")
    Janitor(tmp_path, lambda: True).start()
    deadline = time.monotonic() + 10
    while any((tmp_path / task_files.TRASH).iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any((tmp_path / task_files.TRASH).iterdir())
