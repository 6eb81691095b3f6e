"""Snapshot a job's working directory as a deterministic zip, and unpack it on a node.

Tasks see the snapshot taken at submission, not later edits. Version-control folders, virtual
environments, caches and credentials files are left out silently; the snapshot has a size limit,
checked from ``stat`` before anything is read, and files are streamed into the zip in chunks.
A symlink to a file or folder inside the folder is packed as that file or folder; what cannot be
packed (symlinks leading outside the folder or into a loop, broken symlinks, named pipes,
sockets, devices, unreadable files) is left out and listed in ``Snapshot.left_out`` for the user.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import SpecError
from orchestrator.model import Snapshot

EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules",
                           ".pytest_cache", ".mypy_cache", ".orch", ".tox", "build", "dist", ".eggs"})
EXCLUDED_FILES = frozenset({"credentials.yaml", "credentials.yml"})  # secrets never travel with code
MAX_BYTES = 100 * 1024 * 1024
CHUNK = 1024 * 1024
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"))


@dataclass(frozen=True)
class Entry:
    """A file to pack: where to read it, its name in the zip, and its size and mode from ``stat``."""

    source: Path
    name: str
    size: int
    mode: int


def snapshot(root: Path, *, max_bytes: int = MAX_BYTES) -> Snapshot:
    """Zip ``root`` (sorted, fixed timestamps); ``SpecError`` when its files exceed ``max_bytes``."""
    if not root.is_dir():
        raise SpecError(f"workdir {root} is not a directory", hint="set workdir: to a folder, or leave it out")
    entries, left_out = scan(root, max_bytes=max_bytes, what=f"workdir {root}")
    return _pack(entries, max_bytes, tuple(left_out))


def snapshot_path(path: Path, *, max_bytes: int = MAX_BYTES) -> Snapshot:
    """Like ``snapshot`` for a folder; a single file becomes a one-entry zip under its name."""
    if path.is_dir():
        return snapshot(path, max_bytes=max_bytes)
    try:
        info = path.stat()
    except OSError:
        raise SpecError(f"input {path} does not exist", hint="fix inputs[].path (relative to the config dir)") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"input {path} is {_kind(info.st_mode)}, not a file or folder", hint="point inputs[].path "
                        "at a regular file or a folder")
    if info.st_size > max_bytes:
        raise SpecError(f"input {path} is larger than {max_bytes // 2**20} MiB", hint="keep large data in blob storage")
    return _pack([Entry(path, path.name, info.st_size, info.st_mode)], max_bytes, ())


def scan(root: Path, *, max_bytes: int | None = None, what: str = "folder") -> tuple[list[Entry], list[str]]:
    """The files of ``root`` to pack, in a fixed order, and what is left out (``"path (why)"``),
    from ``stat`` alone (nothing is read); ``SpecError`` at once when the files exceed ``max_bytes``.
    Symlinks to folders inside ``root`` are followed (a link back into its own ancestors is not)."""
    entries: list[Entry] = []
    left_out: list[str] = []
    real_root = root.resolve()
    chains: dict[str, frozenset[Path]] = {str(root): frozenset({real_root})}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        chain = chains.pop(dirpath, frozenset())
        kept_dirs = []
        for name in sorted(dirnames):
            path = here / name
            if _excluded(path):
                continue
            real = path.resolve()
            why = _link_problem(real, real_root) if path.is_symlink() else ""
            if not why and real in chain:
                why = "symlink to a folder that contains it (a loop)"
            if why:
                left_out.append(f"{path.relative_to(root).as_posix()} ({why})")
                continue
            kept_dirs.append(name)
            chains[str(path)] = chain | {real}
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            if name in EXCLUDED_FILES:
                continue
            entry, why = _judge(here / name, root, real_root)
            if entry is not None:
                entries.append(entry)
            elif why:
                left_out.append(f"{(here / name).relative_to(root).as_posix()} ({why})")
    total = sum(entry.size for entry in entries)
    if max_bytes is not None and total > max_bytes:
        largest = sorted(entries, key=lambda e: e.size, reverse=True)[:3]
        raise SpecError(f"{what} is larger than {max_bytes // 2**20} MiB ({_mib(total)} in {len(entries)} files; "
                        f"largest: {', '.join(f'{e.name} {_mib(e.size)}' for e in largest)})",
                        hint="point workdir: at the code only; keep data in blob storage or pass a path")
    return entries, left_out


def _link_problem(target: Path, real_root: Path) -> str:
    """Why a symlink to ``target`` (resolved) is left out, or '' when it may be packed."""
    if target != real_root and real_root not in target.parents:
        return f"symlink to {target}, outside the folder"
    inside = target.relative_to(real_root)
    folders = len(inside.parts) if target.is_dir() else len(inside.parts) - 1
    if target.name in EXCLUDED_FILES or any(_excluded(real_root.joinpath(*inside.parts[:i + 1]))
                                            for i in range(folders)):
        return f"symlink to {inside.as_posix()}, which is never packed"
    return ""


def _judge(path: Path, root: Path, real_root: Path) -> tuple[Entry | None, str]:
    """An entry for ``path``, or why it is left out ('' when silently, as an excluded name)."""
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return _judge_link(path, root, real_root)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return None, _kind(info.st_mode)
    if not os.access(path, os.R_OK):
        return None, "not readable"
    return Entry(path, path.relative_to(root).as_posix(), info.st_size, info.st_mode), ""


def _judge_link(path: Path, root: Path, real_root: Path) -> tuple[Entry | None, str]:
    target = path.resolve()
    problem = _link_problem(target, real_root)
    if problem:
        return None, problem
    try:
        info = target.stat()
    except OSError:
        return None, "broken symlink"
    if not stat.S_ISREG(info.st_mode):
        return None, f"symlink to {_kind(info.st_mode)}"
    if not os.access(target, os.R_OK):
        return None, "symlink to an unreadable file"
    return Entry(target, path.relative_to(root).as_posix(), info.st_size, info.st_mode), ""


def _pack(entries: list[Entry], max_bytes: int, left_out: tuple[str, ...]) -> Snapshot:
    """Stream ``entries`` into a zip in ``CHUNK``s; a file that grew past the limit since ``stat`` is refused."""
    buffer = io.BytesIO()
    budget = max_bytes
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (entry.mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with entry.source.open("rb") as source, \
                    archive.open(info, "w", force_zip64=max_bytes >= zipfile.ZIP64_LIMIT) as target:
                while chunk := source.read(min(CHUNK, budget + 1)):
                    budget -= len(chunk)
                    if budget < 0:
                        raise SpecError(f"{entry.source} grew past {max_bytes // 2**20} MiB while being packed",
                                        hint="snapshot folders whose files are not being written")
                    target.write(chunk)
    blob = buffer.getvalue()
    return Snapshot(hashlib.sha256(blob).hexdigest(), blob, left_out)


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


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


def top_entries(snapshot_dir: Path) -> list[tuple[str, bool]]:
    """The snapshot's top-level names, each with whether it is a regular file."""
    with os.scandir(snapshot_dir) as entries:
        return sorted((entry.name, entry.is_file(follow_symlinks=False)) for entry in entries)


def link_entries(snapshot_dir: Path, entries: Iterable[tuple[str, bool]], task_dir: Path) -> None:
    """Make each of the snapshot's top-level ``entries`` (``top_entries``, listed once by the
    caller: a snapshot does not change once unpacked) visible in ``task_dir``. A regular file gets a hard link (a name,
    no new inode: the cheapest thing a file system makes), anything else a symbolic link, as does
    a file that cannot be hard-linked (too many links already). Either way writing through it
    writes the snapshot's copy, which every task of the job shares."""
    for name, is_file in entries:
        source, link = os.path.join(snapshot_dir, name), os.path.join(task_dir, name)
        try:
            if not (is_file and _hard_linked(source, link)):
                os.symlink(source, link)
        except FileExistsError:  # something is there already (a link, file or folder): kept
            pass


def _hard_linked(source: str, link: str) -> bool:
    """Hard-link ``link`` to ``source``; False where the file system will not (too many links,
    another device, not permitted). ``FileExistsError`` is raised."""
    try:
        os.link(source, link, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _excluded(directory: Path) -> bool:
    """Version control, caches, build output and any virtual environment (it has a pyvenv.cfg)."""
    name = directory.name
    return (name in EXCLUDED_DIRS or name.endswith(".egg-info") or name.startswith(".venv")
            or (directory / "pyvenv.cfg").exists())
