"""Proof that a process is one orch started: its pid, start time and executable, recorded at launch.

A pid alone (or a process group id) is reused after the process ends or the machine restarts,
and a command line can be anything a user types. orch signals a process only when all three
recorded facts still agree, or when it descends from such a process.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import psutil

START_TIME_SLACK = 0.01
"""Seconds two readings of one process's start time may differ by (they come from /proc ticks)."""


@dataclass(frozen=True)
class ProcessMark:
    """``exe`` None: not checked, for a process that may still exec after it is marked (a task
    marked right after its fork); pid and start time (which exec keeps) must still agree."""

    pid: int
    start_time: float
    exe: str | None

    @classmethod
    def of(cls, proc: psutil.Process, *, with_exe: bool = True) -> ProcessMark | None:
        """The mark of a running process; None if it is gone or cannot be read."""
        try:
            return cls(pid=proc.pid, start_time=proc.create_time(), exe=_exe(proc) if with_exe else None)
        except psutil.Error:
            return None

    @classmethod
    def of_pid(cls, pid: int) -> ProcessMark | None:
        """``of(psutil.Process(pid), with_exe=False)`` for a process just started, from one read of
        ``/proc/<pid>/stat`` (the same ticks and boot time psutil reads; an agent marks every task
        it starts, so this is on the path of each). None if it is gone or cannot be read."""
        try:
            return cls(pid=pid, start_time=_proc_start_time(pid), exe=None)
        except (OSError, ValueError, IndexError):
            try:
                return cls.of(psutil.Process(pid), with_exe=False)
            except psutil.Error:
                return None

    @classmethod
    def load(cls, raw: object) -> ProcessMark | None:
        """From a record: ``[pid, start_time, exe]``; None for anything else (an older record)."""
        if not isinstance(raw, (list, tuple)) or len(raw) != 3:
            return None
        try:
            return cls(pid=int(raw[0]), start_time=float(raw[1]), exe=None if raw[2] is None else str(raw[2]))
        except (TypeError, ValueError):
            return None

    def dump(self) -> list[object]:
        return [self.pid, self.start_time, self.exe]

    def live(self) -> psutil.Process | None:
        """The marked process if it still runs as that very process (not a zombie)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.start_time) > START_TIME_SLACK:
                return None
            if self.exe is not None and _exe(proc) != self.exe:
                return None
            return None if proc.status() == psutil.STATUS_ZOMBIE else proc
        except psutil.Error:
            return None


def _exe(proc: psutil.Process) -> str:
    """The executable's path; for a process whose binary was replaced, the path the kernel shows."""
    exe = proc.exe()
    return exe.removesuffix(" (deleted)")


def live_with_descendants(marks: Iterable[ProcessMark]) -> list[psutil.Process]:
    """The marked processes still running, and every live (non-zombie) process below them."""
    found: dict[int, psutil.Process] = {}
    for mark in marks:
        proc = mark.live()
        if proc is None:
            continue
        found[proc.pid] = proc
        try:
            children = proc.children(recursive=True)
        except psutil.Error:
            continue
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    found.setdefault(child.pid, child)
            except psutil.Error:
                continue
    return list(found.values())


def _proc_start_time(pid: int) -> float:
    """Seconds since the epoch at which ``pid`` started, as psutil's ``create_time`` computes it on
    Linux: boot time plus the stat file's start ticks. Raises ``OSError`` off Linux or once gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    return _boot_time() + int(fields[19]) / _clock_ticks()  # field 22 of stat; 3 is the first after ")"


@cache
def _boot_time() -> float:
    return float(psutil.boot_time())


@cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")
