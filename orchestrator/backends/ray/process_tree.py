"""Start a command in its own session and stop it with everything it started.

A task's process runs as a session leader, so its whole tree shares one process group; children
that leave the group are still found through ``psutil`` descendants taken before the kill.
"""
from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Mapping, Sequence

import psutil

_SHELL_META = set("|&;<>()$`\\\"'*?[]#~=%{}!\n")
_SHELL_WORDS = frozenset({
    ".", ":", "alias", "break", "case", "cd", "command", "continue", "do", "done", "elif", "else", "esac", "eval",
    "exec", "exit", "export", "fi", "for", "getopts", "hash", "if", "jobs", "local", "read", "readonly", "return",
    "set", "shift", "source", "then", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "until",
    "wait", "while"})
"""Shell keywords and builtins that have no program of the same name (or behave otherwise)."""
WHICH_SECONDS = 1.0
_found: dict[tuple[str, str | None], tuple[float, str | None]] = {}  # (program, PATH) -> (when, where)


def argv_for(command: str | Sequence[str], *, path: str | None = None) -> list[str]:
    """The argv to run ``command``: a list as is; a string through ``/bin/sh -c``.

    A string of plain words (no shell syntax at all) whose first word is a program on ``path``
    (not a shell builtin such as ``exit``) is exec'd directly, which is what ``sh -c`` would do
    for it anyway, and saves one process start per task. Anything else goes through the shell,
    so a missing program fails the way the shell reports it (exit code 127).
    """
    return _launch(command, path)[0]


def _launch(command: str | Sequence[str], path: str | None) -> tuple[list[str], str | None]:
    """``argv_for``'s argv, and the program's absolute path when it was looked up (None: exec
    finds ``argv[0]`` itself)."""
    if not isinstance(command, str):
        return list(command), None
    if not any(ch in _SHELL_META for ch in command):
        words = shlex.split(command)
        found = which(words[0], path) if words and words[0] not in _SHELL_WORDS else None
        if found:
            return words, found if os.path.isabs(found) else None
    return ["/bin/sh", "-c", command], None


def which(program: str, path: str | None) -> str | None:
    """``shutil.which``, remembered for ``WHICH_SECONDS`` per program and PATH: an agent starting
    thousands of short tasks looks a program up about once a second, not once a task."""
    key, now = (program, path), time.monotonic()
    seen = _found.get(key)
    if seen is not None and now - seen[0] < WHICH_SECONDS:
        return seen[1]
    if len(_found) >= 1024:
        _found.clear()
    found = shutil.which(program, path=path)
    _found[key] = (now, found)
    return found


def spawn(command: str | Sequence[str], *, cwd: Path, env: Mapping[str, str],
          stdout: IO[bytes] | int, stderr: IO[bytes] | int) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new session (``env`` is used as given: pass a dict
    to spare a copy). Raises ``OSError`` if it cannot start."""
    argv, program = _launch(command, env.get("PATH"))
    try:
        return _popen(argv, program, cwd, env, stdout, stderr)
    except (FileNotFoundError, PermissionError):
        if program is None:
            raise
        # it was on the PATH a moment ago: let the shell find it (or say why not, as it would have)
        return _popen(["/bin/sh", "-c", str(command)], None, cwd, env, stdout, stderr)


def _popen(argv: list[str], program: str | None, cwd: Path, env: Mapping[str, str], stdout: IO[bytes] | int,
           stderr: IO[bytes] | int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, executable=program, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def wait_for(proc: subprocess.Popen[bytes], timeout: float | None) -> int | None:
    """``proc``'s exit code, waiting at most ``timeout`` seconds (None: until it exits); None while
    it still runs. Blocks in the kernel (a pidfd), where ``Popen.wait(timeout)`` would poll with
    growing sleeps, so a short task is noticed as it ends."""
    if timeout is None:
        return proc.wait()
    try:
        handle = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfds here, or the process was reaped already
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        ended, _, _ = select.select([handle], [], [], max(0.0, timeout))
    finally:
        os.close(handle)
    return proc.wait() if ended else proc.poll()


def kill_tree(pid: int, *, grace: float = 5.0) -> None:
    """SIGTERM the process group of ``pid`` and all descendants, then SIGKILL what is left."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        procs = []
    _signal_group(pid, signal.SIGTERM)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    _signal_group(pid, signal.SIGKILL)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=grace)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass
