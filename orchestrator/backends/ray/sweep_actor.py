"""The sweep controller on Ray: a detached actor ``orch-sweep-<job>`` running the loop in a thread.

``RaySweepCluster`` implements ``SweepCluster`` by calling the pool manager and the node agents
directly, by actor name in the ``orch`` namespace, so the actor needs nothing from the machine
that started it (no ``$ORCH_HOME``). The actor takes no CPU, restarts if its worker dies (a new
controller resumes from the job's state), and kills itself once the controller is done.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import ray
from orchestrator.backends.ray.connection import NAMESPACE
from orchestrator.backends.ray.pool_ops import agent_name, manager_name
from orchestrator.errors import BackendError
from orchestrator.model import FileChunk, JobInfo, TaskInfo, TaskLaunch
from orchestrator.spec.job import JobSpec
from orchestrator.sweep.controller import ControllerSettings, SweepController

CALL_TIMEOUT = 60.0
START_TIMEOUT = 120.0


def sweep_actor_name(job_id: str) -> str:
    return f"orch-sweep-{job_id}"


class RaySweepCluster:
    """``SweepCluster`` for one job of one pool, through the pool's manager and agents."""

    def __init__(self, pool_id: str, job_id: str) -> None:
        self.pool_id, self.job_id = pool_id, job_id
        self._manager: Any = None
        self._agents: dict[int, Any] = {}
        self._nodes: dict[str, str | None] = {}  # task -> node, as of the last ``tasks()``

    def manager(self) -> Any | None:
        """The pool manager's handle, or None when the pool is gone."""
        if self._manager is None:
            try:
                self._manager = ray.get_actor(manager_name(self.pool_id), namespace=NAMESPACE)
            except ValueError:
                return None
        return self._manager

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        manager = self.manager()
        if manager is None:
            raise ConnectionError(f"the manager of pool {self.pool_id!r} is gone")
        try:
            return ray.get(getattr(manager, method).remote(*args, **kwargs), timeout=CALL_TIMEOUT)
        except ray.exceptions.RayActorError:
            self._manager, self._agents = None, {}
            raise

    def job(self) -> JobInfo | None:
        if self.manager() is None:
            return None
        info: JobInfo | None = self._call("get_job", self.job_id)
        return info

    def tasks(self) -> list[TaskInfo]:
        tasks: list[TaskInfo] = self._call("list_tasks", self.job_id) or []
        self._nodes = {task.id: task.node_id for task in tasks}
        return tasks

    def submit(self, launches: list[TaskLaunch]) -> None:
        self._call("add_tasks", self.job_id, launches)

    def read_metrics(self, task_id: str, offset: int) -> FileChunk | None:
        """One call to the node's agent (the node comes from the last task listing)."""
        known = self._nodes.get(task_id)
        node = int(known) if known is not None else self._call("task_node", self.job_id, task_id)
        if node is None:
            return None
        if node not in self._agents:
            self._agents[node] = ray.get_actor(agent_name(self.pool_id, node), namespace=NAMESPACE)
        chunk: FileChunk | None = ray.get(self._agents[node].read_file.remote(self.job_id, task_id, "metrics", offset),
                                          timeout=CALL_TIMEOUT)
        return chunk

    def stop(self, task_ids: list[str]) -> None:
        self._call("stop_tasks", self.job_id, list(task_ids))

    def seal(self) -> None:
        self._call("seal", self.job_id)


class SweepActor:
    """Runs one job's ``SweepController`` in a thread; see the module docstring."""

    def __init__(self, job: JobSpec, settings: ControllerSettings) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"sweep-{job.id}", daemon=True)
        self.setup_error: str | None = None
        try:
            self.controller = SweepController(job, RaySweepCluster(job.pool, job.id), settings)
        except Exception as exc:  # reported by state(); start() turns it into an OrchError
            self.setup_error = f"{type(exc).__name__}: {exc}"
            return
        self.thread.start()

    def _run(self) -> None:
        self.controller.run(self.stop_event)
        if not self.stop_event.is_set():
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def state(self) -> dict[str, Any]:
        """Whether the loop runs, and the controller's summary (or why it could not start)."""
        if self.setup_error is not None:
            return {"running": False, "setup_error": self.setup_error}
        return {"running": self.thread.is_alive(), **self.controller.summary()}

    def shutdown(self) -> None:
        """End the loop after the current pass (the actor stays until killed)."""
        self.stop_event.set()


def start(job: JobSpec, settings: ControllerSettings) -> Any | None:
    """Start the job's controller actor, or keep the one already running (idempotent).

    Returns its handle, or None when it ended at once (the sweep had nothing left to do).
    ``BackendError`` when the controller cannot be set up."""
    actor = ray.remote(SweepActor).options(
        name=sweep_actor_name(job.id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_concurrency=4,
    ).remote(job, settings)
    try:
        state = ray.get(actor.state.remote(), timeout=START_TIMEOUT)
    except ray.exceptions.RayActorError:
        return None  # it found nothing left to do and ended already
    if state.get("setup_error"):
        ray.kill(actor, no_restart=True)
        raise BackendError(f"the sweep controller of {job.id!r} could not start: {state['setup_error']}")
    return actor


def find(job_id: str) -> Any | None:
    """The job's controller actor, or None when none runs."""
    try:
        return ray.get_actor(sweep_actor_name(job_id), namespace=NAMESPACE)
    except ValueError:
        return None
