"""Start and stop a local multi-node Ray cluster: one raylet per pool node on this machine.

Each node gets its own ports and an ``orch_node_<index>`` resource. By default every node's
address is 127.0.0.1, so Ray's servers listen on loopback only (``expose`` listens on the
machine's address instead, for other machines to join or connect). Token authentication stays
on: orch writes a per-pool token file (mode 0600) and starts every process with it. Ray's temp
dir lies inside a folder only the user can enter.

Stopping signals only processes orch can prove it started: each node's Ray daemons are marked
(pid, start time, executable) when ``ray start`` returns, and a process is stopped only if its
mark still agrees or it descends from one that does (Ray's workers and their tasks). SIGTERM
first, SIGKILL after a grace period; never ``ray stop``.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.backends.ray.process_marks import ProcessMark, live_with_descendants
from orchestrator.errors import BackendError, WaitTimeoutError
from orchestrator.records.home import private_dir

OBJECT_STORE_BYTES = 256 * 1024 * 1024
LOOPBACK = "127.0.0.1"
NodeMarks = tuple[ProcessMark, ...]


@dataclass(frozen=True)
class LocalCluster:
    address: str
    temp_dir: str
    token_file: str
    nodes: tuple[NodeMarks, ...]


def auth_env(token_file: str | None) -> dict[str, str]:
    """Environment that makes Ray processes and drivers use token auth with this token."""
    if not token_file:
        return {}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token_file}


def write_token(state_dir: Path) -> str:
    """Create (once) the pool's token file, readable by the owner only."""
    private_dir(state_dir)
    path = state_dir / "auth_token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return str(path)


def _temp_parent(state_dir: Path) -> Path:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"orch-{digest}"


def private_temp_dir(state_dir: Path) -> str:
    """Ray's temp dir for this pool, inside ``/tmp/orch-<hash>`` (short: Ray's unix sockets need
    short paths), a folder only this user may enter. Refuses one that someone else made."""
    parent = _temp_parent(state_dir)
    try:
        parent.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = parent.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise BackendError(f"{parent} exists and is not a folder of this user: orch will not start Ray in it",
                           hint=f"remove {parent}, or set ORCH_HOME elsewhere")
    os.chmod(parent, 0o700)
    return str(parent / "ray")


def remove_temp_dir(state_dir: Path) -> None:
    """Remove the pool's temp folder (Ray's logs and sockets), once its processes are stopped."""
    parent = _temp_parent(state_dir)
    try:
        info = parent.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        shutil.rmtree(parent, ignore_errors=True)


def start(state_dir: Path, nodes: int, cpus: float, gpus: int, *, timeout: float = 120.0,
          expose: bool = False) -> LocalCluster:
    """Start ``nodes`` raylets (the first is the head). Raises with the log tail on failure,
    having stopped what it started."""
    token_file = write_token(state_dir)
    temp_dir = private_temp_dir(state_dir)
    gcs_port = free_port()
    address = f"{LOOPBACK}:{gcs_port}"
    started: list[NodeMarks] = []
    try:
        for index in range(nodes):
            started.append(start_node(index, address, cpus, gpus, temp_dir, token_file,
                                      state_dir / f"ray-start-{index}.log", timeout=timeout, expose=expose))
    except BaseException:
        stop(started)
        raise
    return LocalCluster(address=address, temp_dir=temp_dir, token_file=token_file, nodes=tuple(started))


def start_node(index: int, address: str, cpus: float, gpus: int, temp_dir: str, token_file: str, log: Path,
               *, timeout: float, expose: bool) -> NodeMarks:
    """Start node ``index`` (0: the head, with its GCS on ``address``'s port); returns its marks."""
    args = ["--node-ip-address", LOOPBACK, f"--num-cpus={int(max(1, round(cpus)))}", f"--num-gpus={gpus}",
            f'--resources={{"orch_node_{index}": 1}}', f"--temp-dir={temp_dir}",
            f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            "--min-worker-port=0", "--max-worker-port=0", "--include-log-monitor=false"]
    if index == 0:
        port = address.rpartition(":")[2]
        args = ["--head", f"--port={port}", "--include-dashboard=false", f"--dashboard-port={free_port()}", *args]
    else:
        args = [f"--address={address}", *args]
    return _ray_start(args, token_file, log, timeout, expose=expose)


def _ray_start(args: list[str], token_file: str, log: Path, timeout: float, *, expose: bool) -> NodeMarks:
    env = {**os.environ, **auth_env(token_file), "RAY_USAGE_STATS_ENABLED": "0"}
    runner = "ray.scripts.scripts" if expose else "orchestrator.backends.ray.loopback"
    argv = [sys.executable, "-m", runner, "start", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            marks = _session_marks(proc.pid)
            proc.kill()
            proc.wait()
            stop([marks], grace=0)
            raise WaitTimeoutError(f"`ray start` did not finish in {timeout:g}s", hint=f"see {log}") from None
    marks = _session_marks(proc.pid)
    if code != 0:
        stop([marks], grace=0)
        raise BackendError(f"`ray start` failed with exit code {code}:\n{_tail(log)}", hint=f"full log: {log}")
    return marks


def _session_marks(session: int) -> NodeMarks:
    """Marks of the processes in the session ``ray start`` (pid ``session``) led. Taken as soon
    as it ends: while any member lives, the kernel hands that id to no other process or session."""
    marks = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) != session or proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.Error, OSError):
            continue
        mark = ProcessMark.of(proc)
        if mark is not None:
            marks.append(mark)
    return tuple(marks)


def _tail(log: Path, size: int = 1500) -> str:
    with open(log, "rb") as handle:
        handle.seek(max(0, log.stat().st_size - size))
        return handle.read().decode(errors="replace")


def cluster_processes(nodes: Iterable[Sequence[ProcessMark]]) -> list[psutil.Process]:
    """Live processes of these nodes: their marked daemons and everything below them."""
    found = live_with_descendants(mark for node in nodes for mark in node)
    return [proc for proc in found if proc.pid != os.getpid()]


def stop(nodes: Iterable[Sequence[ProcessMark]], *, grace: float = 10.0) -> None:
    """Stop these nodes' processes: SIGTERM, wait ``grace`` seconds, SIGKILL; verify they are gone."""
    nodes = [tuple(node) for node in nodes]
    procs = cluster_processes(nodes)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive + cluster_processes(nodes):
        _signal(proc, signal.SIGKILL)
    deadline = time.monotonic() + max(grace, 5.0)
    while cluster_processes(nodes):
        if time.monotonic() > deadline:
            left = ", ".join(str(p.pid) for p in cluster_processes(nodes))
            raise BackendError(f"Ray processes {left} did not exit after SIGKILL")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass
