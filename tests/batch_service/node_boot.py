"""Bringing a new node up: ``creating`` → ``starting`` → (start task) → ``idle``.

With a start task and ``waitForSuccess`` (the default) the node waits in
``waitingforstarttask`` and ends ``idle`` or ``starttaskfailed``; without it the node is
``idle`` while the start task still runs. The start task runs in the node's ``startup/``
directory (``wd/``, ``stdout.txt``, ``stderr.txt``) and is retried up to ``maxTaskRetryCount``.
"""
from __future__ import annotations

import copy
import threading
import time
from typing import Any

from .layout import NodeDirs, NodeIdentity, apply_settings, node_environment, prepare_task_dir
from .resource_files import ResourceFileError, download_resource_files
from .runner import ExecutionHandle, run_process
from .state import BatchState
from .times import format_timestamp, utc_now


class NodeBooter:
    """Runs one boot thread per new node."""

    def __init__(self, state: BatchState) -> None:
        self.state = state

    def boot(self, pool_id: str, node_id: str) -> None:
        """Start booting a node that was just added to its pool."""
        threading.Thread(target=self._boot, args=(pool_id, node_id), name=f"boot-{node_id}", daemon=True).start()

    def _step(self, pool_id: str, node_id: str, state_name: str) -> bool:
        time.sleep(self.state.settings.node_boot_delay_s)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            if node is None or self.state.stopping:
                return False
            node.lifecycle.move(state_name)
            if state_name == "starting":
                node.last_boot_time = utc_now()
            self.state.wake()
            return True

    def _boot(self, pool_id: str, node_id: str) -> None:
        if not self._step(pool_id, node_id, "starting"):
            return
        time.sleep(self.state.settings.node_boot_delay_s)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            pool = self.state.pools.get(pool_id.lower())
            if node is None or pool is None or self.state.stopping:
                return
            start_task = copy.deepcopy(pool.spec.get("startTask"))
            wait = bool((start_task or {}).get("waitForSuccess", True))
            node.lifecycle.move("waitingforstarttask" if start_task and wait else "idle")
            self.state.wake()
            if not start_task:
                return
            handle = ExecutionHandle()
            node.start_task_handle = handle
            node.start_task_info = {"state": "running", "startTime": format_timestamp(utc_now()), "retryCount": 0}
            identity = NodeIdentity(pool.id, node.id, node.root_dir, node.ip_address, node.is_dedicated)
            account, account_url = self.state.account, self.state.base_url
        info = self._run_start_task(identity, start_task, handle, account, account_url)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            if node is None or node.start_task_handle is not handle:
                return
            node.start_task_handle = None
            node.start_task_info = {**(node.start_task_info or {}), **info}
            if wait:
                node.lifecycle.move("idle" if info["result"] == "success" else "starttaskfailed")
            self.state.wake()

    def _run_start_task(self, node: NodeIdentity, start_task: dict[str, Any], handle: ExecutionHandle,
                        account: str, account_url: str) -> dict[str, Any]:
        """Run the start task with retries; the ``startTaskInfo`` fields of its end."""
        task_dir = NodeDirs(node.root_dir).startup
        working_dir = prepare_task_dir(task_dir)
        done: dict[str, Any] = {"state": "completed"}
        try:
            download_resource_files(start_task.get("resourceFiles"), working_dir, self.state.settings.auto_storage)
        except ResourceFileError as exc:
            done.update(endTime=format_timestamp(utc_now()), result="failure", failureInfo=exc.failure_info())
            return done
        env = node_environment(account, account_url, node, task_dir)
        apply_settings(env, start_task.get("environmentSettings"))
        max_retries, retries = int(start_task.get("maxTaskRetryCount") or 0), 0
        while True:
            outcome = run_process(str(start_task["commandLine"]), cwd=working_dir, env=env,
                                  stdout_path=task_dir / "stdout.txt", stderr_path=task_dir / "stderr.txt",
                                  handle=handle)
            if outcome.exit_code == 0 or outcome.cancel_reason or outcome.launch_error:
                break
            if max_retries != -1 and retries >= max_retries:
                break
            retries += 1
            done["lastRetryTime"] = format_timestamp(utc_now())
        done.update(endTime=format_timestamp(utc_now()), retryCount=retries,
                    result="success" if outcome.exit_code == 0 else "failure")
        if outcome.exit_code is not None:
            done["exitCode"] = outcome.exit_code
        if outcome.launch_error:
            done["failureInfo"] = {"category": "usererror", "code": outcome.launch_error,
                                   "message": outcome.launch_message or ""}
        return done
