"""The sweep controller: the loop that drives a job's adaptive sweeps while they run.

It runs next to the cluster (for Ray, in a detached actor; see
``orchestrator.backends.ray.sweep_actor``), not in the user's terminal, and talks to the backend
only through the small ``SweepCluster`` protocol below, so the same loop serves every backend and
an in-memory fake in tests. The job exists before the controller starts, unsealed, holding every
trial known up front (grid/random/sobol trials and plain tasks); the controller adds Bayesian
trials, stops trials (early termination, ``limits.timeout``) and seals the job when no trial will
be added (if ``auto_complete``), so the job completes once its last trial ends. The decisions per
sweep task are ``orchestrator.sweep.adaptive``'s; this module does the passes.

Each pass: read the job and its tasks, read new metrics of the trials whose sweep needs them (at
their offsets; see ``orchestrator.sweep.metrics_book``), let each adaptive sweep decide, stop and
launch what it decided, seal when all sweeps are exhausted. ``run`` repeats passes until the job
is finished, cancelled or gone, or every adaptive sweep is settled. A pass that fails (the backend
briefly unreachable) is retried after a growing pause; nothing is lost, as every decision is
re-derived from the cluster's state. Restartable: a new controller over the same job reads the
existing tasks and metrics first and continues (see ``AdaptiveSweep``), never duplicating a trial.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from orchestrator.model import FileChunk, JobInfo, TaskInfo, TaskLaunch
from orchestrator.spec.job import JobSpec, TaskSpec
from orchestrator.sweep.adaptive import AdaptiveSweep, is_held, needs_controller
from orchestrator.sweep.expand import expand
from orchestrator.sweep.metrics_book import TrialMetricsBook
from orchestrator.sweep.trial import Trial, trial_task_id
from orchestrator.task_launch import launch_for

log = logging.getLogger(__name__)
MAX_ERROR_PAUSE = 30.0
PAUSE_PER_PASS_SECOND = 4.0  # a pass that took t seconds is followed by >= 4t: at most 20% busy


class SweepCluster(Protocol):
    """What the controller needs from a backend, for one job. Calls may raise on transient
    failures (the pass is retried); they must be idempotent on task ids."""

    def job(self) -> JobInfo | None:
        """The job, or None once it is gone (deleted, or its pool removed)."""

    def tasks(self) -> list[TaskInfo]:
        """Every task of the job with its state and parameters."""

    def submit(self, launches: list[TaskLaunch]) -> None:
        """Add tasks to the job; ids already present are left as they are."""

    def read_metrics(self, task_id: str, offset: int) -> FileChunk | None:
        """Bytes of the task's metrics file from ``offset``, and its size; None while it has none."""

    def stop(self, task_ids: list[str]) -> None:
        """End tasks early: they become ``stopped`` (not failed); finished ones are left alone."""

    def seal(self) -> None:
        """No task will be added: the job completes when its tasks are all done."""


@dataclass(frozen=True)
class ControllerSettings:
    """Pool facts for rendering trials, the default Bayesian concurrency, and the pass interval.

    ``caps_in_flight`` false: the engine cannot cap a job's tasks in flight, so sweeps with
    ``max_concurrent_trials`` are held back (``adaptive.is_held``): the controller expands them
    where it runs (planning refuses held-back factories that read the submitting machine's files).
    """

    gpus_per_node: int = 0
    pool_nodes: int = 1
    default_concurrency: int = 1
    poll_seconds: float = 0.25
    caps_in_flight: bool = True


class SweepController:
    """Drives the adaptive sweeps of one job through a ``SweepCluster`` (see the module docstring)."""

    def __init__(self, job: JobSpec, cluster: SweepCluster, settings: ControllerSettings = ControllerSettings(),
                 *, clock: Callable[[], float] = time.time) -> None:
        self.job, self.cluster, self.settings, self.clock = job, cluster, settings, clock
        self.book = TrialMetricsBook(cluster.read_metrics)
        caps = settings.caps_in_flight
        self.sweeps = [AdaptiveSweep(task, task_id, self._renderer(task, task_id, position),
                                     default_concurrency=settings.default_concurrency,
                                     held=is_held(task, caps_in_flight=caps), trials=self._expansion(task, position))
                       for position, (task_id, task) in enumerate(zip(job.task_ids(), job.tasks))
                       if needs_controller(task, caps_in_flight=caps)]
        self.sealed = False
        self.passes = 0
        self.last_error: str | None = None

    def _renderer(self, task: TaskSpec, task_id: str, position: int) -> Callable[[Trial], TaskLaunch]:
        def render(trial: Trial) -> TaskLaunch:
            return launch_for(self.job, task, trial_task_id(task_id, trial.index),
                              gpus_per_node=self.settings.gpus_per_node, pool_nodes=self.settings.pool_nodes,
                              trial=trial, key_path=f"tasks[{position}].command")
        return render

    @staticmethod
    def _expansion(task: TaskSpec, position: int) -> Callable[[], Iterator[Trial]]:
        return lambda: expand(task, key_path=f"tasks[{position}]")

    def step(self) -> bool:
        """One pass; True when the controller has nothing more to do."""
        info = self.cluster.job()
        if info is None or info.state == "cancelled":
            return True
        tasks = self.cluster.tasks()
        elapsed = self.clock() - info.created_at
        done = True
        for sweep in self.sweeps:
            trials = [t for t in tasks if sweep.owns(t.id)]
            if sweep.wants_metrics:
                for trial in trials:
                    self.book.refresh(trial)
            actions = sweep.advance(trials, self.book, elapsed=elapsed)
            if actions.stop:
                log.info("stopping %s", ", ".join(actions.stop))
                self.cluster.stop(actions.stop)
            if actions.launch:
                log.info("launching %s", ", ".join(launch.id for launch in actions.launch))
                self.cluster.submit(actions.launch)
            done = done and not actions.launch and not actions.stop and sweep.settled(trials)
        if not self.sealed and self.job.auto_complete and all(sweep.exhausted for sweep in self.sweeps):
            self.cluster.seal()
            self.sealed = True
        self.passes += 1
        return info.finished or (done and (self.sealed or not self.job.auto_complete))

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Pass after pass until ``step`` says done or ``stop_event`` is set. Passes over big jobs
        are spaced out (see ``PAUSE_PER_PASS_SECOND``) so the controller never loads the cluster."""
        event = stop_event or threading.Event()
        failures = 0
        while not event.is_set():
            started = time.monotonic()
            try:
                if self.step():
                    return
                failures, self.last_error = 0, None
                pause = max(self.settings.poll_seconds, PAUSE_PER_PASS_SECOND * (time.monotonic() - started))
            except Exception as exc:  # a pass must never kill the controller; the next one retries
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("sweep pass failed (%d in a row): %s", failures, self.last_error)
                pause = min(MAX_ERROR_PAUSE, self.settings.poll_seconds * 2 ** min(failures, 6))
            event.wait(pause)

    def summary(self) -> dict[str, object]:
        """Passes, sealed, the last error and each sweep's counts (for status displays)."""
        return {"passes": self.passes, "sealed": self.sealed, "last_error": self.last_error,
                "sweeps": [sweep.describe() for sweep in self.sweeps]}
