"""Snapshot a job's working directory as a deterministic zip, and unpack it on a node.

Tasks see the snapshot taken at submission, not later edits. Version-control folders, virtual
environments and caches are left out; the snapshot has a size limit with a clear error.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

from orchestrator.errors import SpecError
from orchestrator.model import Snapshot

EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules",
                           ".pytest_cache", ".mypy_cache", ".orch", ".tox", "build", "dist", ".eggs"})
EXCLUDED_FILES = frozenset({"credentials.yaml", "credentials.yml"})  # secrets never travel with code
MAX_BYTES = 100 * 1024 * 1024


def snapshot(root: Path, *, max_bytes: int = MAX_BYTES) -> Snapshot:
    """Zip ``root`` (sorted, fixed timestamps)."""
    if not root.is_dir():
        raise SpecError(f"workdir {root} is not a directory", hint="set workdir: to a folder, or leave it out")
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in _files(root):
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            total += len(data)
            if total > max_bytes:
                raise SpecError(f"workdir {root} is larger than {max_bytes // 2**20} MiB",
                                hint="point workdir: at the code only; keep data in blob storage or pass a path")
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            archive.writestr(info, data)
    blob = buffer.getvalue()
    return Snapshot(hashlib.sha256(blob).hexdigest(), blob)


def snapshot_path(path: Path, *, max_bytes: int = MAX_BYTES) -> Snapshot:
    """Like ``snapshot`` for a folder; a single file becomes a one-entry zip under its name."""
    if path.is_dir():
        return snapshot(path, max_bytes=max_bytes)
    if not path.is_file():
        raise SpecError(f"input {path} does not exist", hint="fix inputs[].path (relative to the config dir)")
    if path.stat().st_size > max_bytes:
        raise SpecError(f"input {path} is larger than {max_bytes // 2**20} MiB", hint="keep large data in blob storage")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        info = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (path.stat().st_mode & 0o777) << 16
        archive.writestr(info, path.read_bytes())
    blob = buffer.getvalue()
    return Snapshot(hashlib.sha256(blob).hexdigest(), blob)


def unpack(blob: bytes, target: Path) -> None:
    """Extract a snapshot into ``target`` atomically (a concurrent caller sees all or nothing)."""
    if target.is_dir():
        return
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for info in archive.infolist():
            archive.extract(info, staging)
            mode = info.external_attr >> 16
            if mode:
                os.chmod(staging / info.filename, mode)
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise


def link_at(source: Path, link: Path) -> None:
    """Make ``link`` (inside a task dir) point at ``source``, creating parent folders."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists() and not link.is_symlink():
        link.symlink_to(source)


def link_into(snapshot_dir: Path, task_dir: Path) -> None:
    """Make each top-level entry of the snapshot visible in ``task_dir`` as a symlink."""
    for entry in snapshot_dir.iterdir():
        link = task_dir / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry)


def _excluded(directory: Path) -> bool:
    """Version control, caches, build output and any virtual environment (it has a pyvenv.cfg)."""
    name = directory.name
    return (name in EXCLUDED_DIRS or name.endswith(".egg-info") or name.startswith(".venv")
            or (directory / "pyvenv.cfg").exists())


def _files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _excluded(Path(dirpath) / d))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and name not in EXCLUDED_FILES:
                out.append(path)
    return out
