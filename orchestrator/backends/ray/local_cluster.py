"""Start and stop a local multi-node Ray cluster: one raylet per pool node on this machine.

Each node gets its own ports and a ``node_index`` resource. Token authentication stays on:
orch writes a per-pool token file (mode 0600) and starts every process with it. Stopping kills
only the processes of this cluster (their process groups and descendants, and anything naming
its temp dir), SIGTERM first and SIGKILL after a grace period: never ``ray stop``.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.errors import BackendError, WaitTimeoutError

OBJECT_STORE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class LocalCluster:
    address: str
    temp_dir: str
    token_file: str
    process_groups: tuple[int, ...]


def auth_env(token_file: str | None) -> dict[str, str]:
    """Environment that makes Ray processes and drivers use token auth with this token."""
    if not token_file:
        return {}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token_file}


def write_token(state_dir: Path) -> str:
    """Create (once) the pool's token file, readable by the owner only."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "auth_token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return str(path)


def short_temp_dir(state_dir: Path) -> str:
    """Ray's unix sockets need short paths: ``/tmp/orch-<hash>``."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return str(Path(tempfile.gettempdir()) / f"orch-{digest}")


def start(state_dir: Path, nodes: int, cpus: float, gpus: int, *, timeout: float = 120.0) -> LocalCluster:
    """Start ``nodes`` raylets (the first is the head). Raises with the log tail on failure."""
    token_file = write_token(state_dir)
    temp_dir = short_temp_dir(state_dir)
    host = "127.0.0.1"
    gcs_port = free_port()
    address = f"{host}:{gcs_port}"
    groups: list[int] = []
    try:
        for index in range(nodes):
            args = _node_args(index, address, gcs_port, cpus, gpus, temp_dir)
            groups.append(_ray_start(args, token_file, state_dir / f"ray-start-{index}.log", timeout))
    except BaseException:
        stop(temp_dir, groups)
        raise
    return LocalCluster(address=address, temp_dir=temp_dir, token_file=token_file, process_groups=tuple(groups))


def _node_args(index: int, address: str, gcs_port: int, cpus: float, gpus: int, temp_dir: str) -> list[str]:
    args = ["--node-ip-address", "127.0.0.1", f"--num-cpus={int(max(1, round(cpus)))}", f"--num-gpus={gpus}",
            f'--resources={{"orch_node_{index}": 1}}', f"--temp-dir={temp_dir}",
            f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            "--min-worker-port=0", "--max-worker-port=0", "--include-log-monitor=false"]
    if index == 0:
        return ["--head", f"--port={gcs_port}", "--include-dashboard=false", f"--dashboard-port={free_port()}", *args]
    return [f"--address={address}", *args]


def _ray_start(args: list[str], token_file: str, log: Path, timeout: float) -> int:
    env = {**os.environ, **auth_env(token_file), "RAY_USAGE_STATS_ENABLED": "0"}
    argv = [sys.executable, "-m", "ray.scripts.scripts", "start", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            raise WaitTimeoutError(f"`ray start` did not finish in {timeout:g}s", hint=f"see {log}") from None
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        _kill_group(proc.pid, signal.SIGKILL)
        raise BackendError(f"`ray start` failed with exit code {code}:\n{tail}", hint=f"full log: {log}")
    return proc.pid


def cluster_processes(temp_dir: str | None, groups: list[int] | tuple[int, ...]) -> list[psutil.Process]:
    """Live processes of this cluster: in its process groups, naming its temp dir, and their children."""
    found: dict[int, psutil.Process] = {}
    wanted_groups = set(groups)
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if os.getpgid(proc.pid) in wanted_groups or (temp_dir and temp_dir in cmdline):
                found[proc.pid] = proc
        except (psutil.Error, ProcessLookupError):
            continue
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def stop(temp_dir: str | None, groups: list[int] | tuple[int, ...], *, grace: float = 10.0) -> None:
    """Stop this cluster's processes: SIGTERM, wait ``grace`` seconds, SIGKILL; verify they are gone."""
    procs = cluster_processes(temp_dir, groups)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive + cluster_processes(temp_dir, groups):
        _signal(proc, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while cluster_processes(temp_dir, groups):
        if time.monotonic() > deadline:
            left = ", ".join(str(p.pid) for p in cluster_processes(temp_dir, groups))
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


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
