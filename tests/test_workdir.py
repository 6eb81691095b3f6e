"""Workdir snapshots: deterministic, exclusions, size limit, atomic unpack, links into a task dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import workdir
from orchestrator.errors import SpecError


def make_tree(root: Path) -> None:
    (root / "jobs").mkdir(parents=True)
    (root / "jobs" / "train.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("echo run\n")
    (root / "run.sh").chmod(0o755)
    for junk in (".git", "__pycache__", "node_modules"):
        (root / junk).mkdir()
        (root / junk / "x").write_text("junk")
    env = root / "my-env"
    env.mkdir()
    (env / "pyvenv.cfg").write_text("home = /usr\n")
    (root / ".venv-ci").mkdir()
    (root / ".venv-ci" / "big").write_text("x")


def test_snapshot_is_deterministic_and_skips_environments(tmp_path: Path) -> None:
    make_tree(tmp_path / "a")
    first = workdir.snapshot(tmp_path / "a")
    blob = first.data
    assert workdir.snapshot(tmp_path / "a").digest == first.digest
    target = tmp_path / "unpacked"
    workdir.unpack(blob, target)
    names = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert names == ["jobs/train.py", "run.sh"]
    assert (target / "run.sh").stat().st_mode & 0o111


def test_snapshot_size_limit_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"0" * 2048)
    with pytest.raises(SpecError, match="larger than"):
        workdir.snapshot(tmp_path, max_bytes=1024)


def test_link_into_task_dir(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    blob = workdir.snapshot(tmp_path / "src").data
    workdir.unpack(blob, tmp_path / "snap")
    task = tmp_path / "task"
    task.mkdir()
    workdir.link_into(tmp_path / "snap", task)
    assert (task / "jobs" / "train.py").read_text() == "print('hi')\n"
