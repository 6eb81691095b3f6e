"""Workdir snapshots: deterministic, exclusions, size limit, atomic unpack, links into a task dir."""
from __future__ import annotations

import io
import os
import socket
import time
import tracemalloc
import zipfile
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
    workdir.link_entries(tmp_path / "snap", workdir.top_entries(tmp_path / "snap"), task)
    assert (task / "jobs" / "train.py").read_text() == "print('hi')\n"


def test_a_snapshot_file_is_hard_linked_and_a_folder_symlinked_into_a_task_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    snap = tmp_path / "snap"
    (snap / "data").mkdir(parents=True)
    (snap / "run.sh").write_text("echo hi\n")
    entries = workdir.top_entries(snap)
    assert entries == [("data", False), ("run.sh", True)]
    first, second = tmp_path / "t1", tmp_path / "t2"
    first.mkdir()
    workdir.link_entries(snap, entries, first)
    assert (first / "data").is_symlink() and (first / "data").resolve() == snap / "data"
    assert not (first / "run.sh").is_symlink() and (first / "run.sh").samefile(snap / "run.sh")
    workdir.link_entries(snap, entries, first)  # what is there already is kept
    second.mkdir()

    def too_many_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(workdir.os, "link", too_many_links)
    workdir.link_entries(snap, entries, second)
    assert (second / "run.sh").is_symlink() and (second / "run.sh").read_text() == "echo hi\n"


def test_a_huge_sparse_file_is_refused_from_its_size_without_reading(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("x = 1\n")
    with (tmp_path / "data.bin").open("wb") as handle:
        handle.truncate(2 * 2**30)  # 2 GiB, no blocks on disk
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(SpecError, match=r"larger than 100 MiB \(2,048\.0 MiB in 2 files; largest: data\.bin"):
        workdir.snapshot(tmp_path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 2**20


def test_files_are_streamed_into_the_zip(tmp_path: Path) -> None:
    (tmp_path / "zeros.bin").write_bytes(bytes(40 * 2**20))
    tracemalloc.start()
    snap = workdir.snapshot(tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20, peak  # one chunk at a time, not the 40 MiB file
    target = tmp_path.parent / "unpacked"
    workdir.unpack(snap.data, target)
    assert (target / "zeros.bin").stat().st_size == 40 * 2**20


def test_what_cannot_be_packed_is_left_out_and_listed(tmp_path: Path) -> None:
    root = tmp_path / "wd"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "model.py").write_text("m = 1\n")
    (root / "credentials.yaml").write_text("key: secret\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours\n")
    (root / "escape.txt").symlink_to(outside)
    (root / "escape-dir").symlink_to(tmp_path)
    (root / "broken").symlink_to(root / "nowhere")
    (root / "alias.py").symlink_to(root / "sub" / "model.py")
    (root / "linked-sub").symlink_to(root / "sub")
    (root / "sub" / "loop").symlink_to(root)
    (root / "creds-link").symlink_to(root / "credentials.yaml")
    os.mkfifo(root / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "sock"))
    try:
        snap = workdir.snapshot(root)
    finally:
        listener.close()
    with zipfile.ZipFile(io.BytesIO(snap.data)) as archive:
        assert sorted(archive.namelist()) == ["alias.py", "linked-sub/model.py", "sub/model.py"]
    assert sorted(snap.left_out) == sorted([
        f"escape.txt (symlink to {outside}, outside the folder)",
        f"escape-dir (symlink to {tmp_path}, outside the folder)",
        "broken (broken symlink)",
        "creds-link (symlink to credentials.yaml, which is never packed)",
        "pipe (a named pipe)",
        "sock (a socket)",
        "sub/loop (symlink to a folder that contains it (a loop))",
        "linked-sub/loop (symlink to a folder that contains it (a loop))",
    ])


def test_an_input_that_is_a_pipe_is_refused_without_reading_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(SpecError, match="is a named pipe, not a file or folder"):
        workdir.snapshot_path(tmp_path / "pipe")
    (tmp_path / "one.txt").write_text("1\n")
    with zipfile.ZipFile(io.BytesIO(workdir.snapshot_path(tmp_path / "one.txt").data)) as archive:
        assert archive.read("one.txt") == b"1\n"


def test_submission_warns_about_what_the_snapshot_left_out(tmp_path: Path) -> None:
    from orchestrator import pools
    from orchestrator.spec.job import JobSpec
    from orchestrator.spec.pool import PoolSpec
    from orchestrator.submit import submit_job
    from tests.support.memory_backend import MemoryBackend

    memory = MemoryBackend()
    pools.create_pool(PoolSpec.model_validate({"id": "mem"}), backend=memory)
    (tmp_path / "run.py").write_text("print(1)\n")
    os.mkfifo(tmp_path / "fifo")
    warnings: list[str] = []
    job = JobSpec.model_validate({"id": "j", "pool": "mem", "tasks": [{"command": "python run.py"}]})
    submit_job(job, config_dir=tmp_path, warn=warnings.append, backend=memory)
    assert warnings == ["workdir: left out fifo (a named pipe)"]
