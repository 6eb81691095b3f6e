"""Running task command lines as local process groups, with kill, timeout and cancellation.

Batch does not run command lines through a shell: the line is split into arguments with
POSIX shell quoting rules (``shlex``) and executed directly, so ``/bin/sh -c "..."`` is how a
caller asks for a shell. Each process starts in its own session, so killing its process
group takes its children with it.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessOutcome:
    """How a process run ended.

    ``exit_code`` follows the shell convention for signals (128 + signal number).
    ``launch_error`` is a Batch failure code (``CommandProgramNotFound``/``CommandLaunchFailed``)
    when the process never started; ``cancel_reason`` is set when the handle cancelled it.
    """

    exit_code: int | None
    timed_out: bool = False
    cancel_reason: str | None = None
    launch_error: str | None = None
    launch_message: str | None = None


class ExecutionHandle:
    """The processes of one task execution; ``cancel`` kills them now and any started later."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen[bytes]] = []
        self.cancel_reason: str | None = None
        self.finished = threading.Event()

    def register(self, process: subprocess.Popen[bytes]) -> None:
        """Track ``process``; kill it at once when the execution is already cancelled."""
        with self._lock:
            self._processes.append(process)
            cancelled = self.cancel_reason is not None
        if cancelled:
            kill_process_group(process)

    def cancel(self, reason: str) -> None:
        """Record why the execution stops (first reason wins) and kill all its process groups."""
        with self._lock:
            if self.cancel_reason is None:
                self.cancel_reason = reason
        self.kill_all()

    def kill_all(self, *, forget: bool = False) -> None:
        """Kill every tracked process group (leftover background processes included);
        with ``forget``, stop tracking them so their ids are never signalled again."""
        with self._lock:
            processes = list(self._processes)
            if forget:
                self._processes.clear()
        for process in processes:
            kill_process_group(process)

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        """Stop tracking a process whose group has been cleaned up."""
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the session/process group that ``process`` leads; no error if it is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def split_command_line(command_line: str) -> list[str]:
    """Arguments of a Batch command line (POSIX quoting); ValueError when unbalanced or empty."""
    args = shlex.split(command_line, posix=True)
    if not args:
        raise ValueError("the command line is empty")
    return args


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_process(
    command_line: str,
    *,
    cwd: Path,
    env: dict[str, str],
    stdout_path: Path,
    stderr_path: Path,
    handle: ExecutionHandle,
    deadline: float | None = None,
    kill_leftovers: bool = True,
) -> ProcessOutcome:
    """Run ``command_line`` to completion, appending its output to the two files.

    ``deadline`` is a ``time.monotonic()`` instant after which the process group is killed
    (``timed_out``). With ``kill_leftovers`` the group is killed after the main process exits,
    so background children do not outlive the task.
    """
    try:
        args = split_command_line(command_line)
    except ValueError as exc:
        return ProcessOutcome(None, launch_error="CommandLaunchFailed", launch_message=str(exc))
    try:
        with open(stdout_path, "ab") as stdout, open(stderr_path, "ab") as stderr:
            process = subprocess.Popen(
                args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                start_new_session=True,
            )
    except FileNotFoundError as exc:
        return ProcessOutcome(None, launch_error="CommandProgramNotFound", launch_message=str(exc))
    except OSError as exc:
        return ProcessOutcome(None, launch_error="CommandLaunchFailed", launch_message=str(exc))
    handle.register(process)
    timed_out = _wait(process, deadline)
    if kill_leftovers or timed_out:
        kill_process_group(process)
    if kill_leftovers:
        handle.forget(process)
    return ProcessOutcome(_exit_code(process.returncode), timed_out=timed_out, cancel_reason=handle.cancel_reason)


def _wait(process: subprocess.Popen[bytes], deadline: float | None) -> bool:
    """Wait for exit; kill the group and return True when ``deadline`` passes first."""
    try:
        process.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        return False
    except subprocess.TimeoutExpired:
        kill_process_group(process)
        process.wait()
        return True
