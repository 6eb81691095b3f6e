"""On-disk layout of a compute node and the environment Batch gives its processes.

Node root ``<root>/nodes/<node-id>/`` holds ``startup/`` (start task: ``wd/``, ``stdout.txt``,
``stderr.txt``), ``shared/`` and ``workitems/<job>/job-1/<task>/`` (``wd/``, ``stdout.txt``,
``stderr.txt``), as on a Linux Batch node under ``/mnt/batch/tasks``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where a multi-instance primary listens, as in AZ_BATCH_MASTER_NODE on Batch.
MASTER_NODE_PORT = 6000


@dataclass(frozen=True)
class NodeDirs:
    """Directory paths of one node."""

    root: Path

    @property
    def startup(self) -> Path:
        return self.root / "startup"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.root / "workitems" / job_id / "job-1" / task_id

    def relative(self, path: Path) -> str:
        """``path`` relative to the node root, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    def create(self) -> None:
        for directory in (self.startup / "wd", self.shared, self.root / "workitems"):
            directory.mkdir(parents=True, exist_ok=True)


def prepare_task_dir(task_dir: Path) -> Path:
    """Create the task directory with its ``wd/``, ``stdout.txt`` and ``stderr.txt``; returns ``wd``."""
    working_dir = task_dir / "wd"
    working_dir.mkdir(parents=True, exist_ok=True)
    for name in ("stdout.txt", "stderr.txt"):
        (task_dir / name).touch()
    return working_dir


@dataclass(frozen=True)
class NodeIdentity:
    """What a process needs to know about the node it runs on."""

    pool_id: str
    node_id: str
    root_dir: Path
    ip_address: str
    is_dedicated: bool


def node_environment(account: str, account_url: str, node: NodeIdentity, task_dir: Path) -> dict[str, str]:
    """The host environment plus the ``AZ_BATCH_*`` variables every process on ``node`` gets."""
    dirs = NodeDirs(node.root_dir)
    env = dict(os.environ)
    env.update(
        AZ_BATCH_ACCOUNT_NAME=account,
        AZ_BATCH_ACCOUNT_URL=account_url,
        AZ_BATCH_POOL_ID=node.pool_id,
        AZ_BATCH_NODE_ID=node.node_id,
        AZ_BATCH_NODE_IS_DEDICATED="true" if node.is_dedicated else "false",
        AZ_BATCH_NODE_ROOT_DIR=str(dirs.root),
        AZ_BATCH_NODE_SHARED_DIR=str(dirs.shared),
        AZ_BATCH_NODE_STARTUP_DIR=str(dirs.startup),
        AZ_BATCH_TASK_DIR=str(task_dir),
        AZ_BATCH_TASK_WORKING_DIR=str(task_dir / "wd"),
        AZ_BATCH_TASK_USER="_azbatch",
    )
    return env


def apply_settings(env: dict[str, str], settings: list[dict[str, Any]] | None) -> dict[str, str]:
    """Overlay Batch ``environmentSettings`` (``[{name, value}]``) on ``env``."""
    for setting in settings or []:
        env[str(setting["name"])] = str(setting.get("value") or "")
    return env


def multi_instance_environment(ip_addresses: list[str], is_primary: bool, task_dir: Path) -> dict[str, str]:
    """Variables of one multi-instance instance: host lists, master node, shared task dir."""
    return {
        "AZ_BATCH_HOST_LIST": ",".join(ip_addresses),
        "AZ_BATCH_NODE_LIST": ";".join(ip_addresses),
        "AZ_BATCH_MASTER_NODE": f"{ip_addresses[0]}:{MASTER_NODE_PORT}",
        "AZ_BATCH_IS_CURRENT_NODE_MASTER": "true" if is_primary else "false",
        "AZ_BATCH_TASK_SHARED_DIR": str(task_dir),
    }
