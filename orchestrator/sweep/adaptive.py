"""One adaptive sweep task: the decisions the sweep controller makes for it on each pass.

A sweep task is adaptive when it samples ``bayesian``, has an ``early_termination`` policy or a
sweep-level ``limits.timeout``. Given its trials' states and metrics, ``AdaptiveSweep.advance``
says which trials to stop and which new trials to launch:

- **Objective value** of a finished trial (what Bayesian search is told): the *best* value of
  the objective metric the trial reported (max or min by the goal), the same value
  ``orch sweep results`` ranks by. A failed or cancelled trial, or one that reported nothing,
  is told None (optuna marks it failed). A trial stopped early is told its best value so far:
  it ran long enough to show it was poor, which is worth knowing.
- **Bayesian**: new trials are asked while fewer than ``max_concurrent_trials`` (default: the
  pool's task slots) are pending or running and fewer than ``max_total_trials`` exist. Trial
  task ids are ``<task>-<index>`` with the index counting up, so they never collide.
- **Early termination**: each pass, ``early_stop.trials_to_stop`` judges the running trials
  against every trial's history; each chosen trial is stopped once.
- **Held back**: on an engine that cannot cap a job's tasks in flight itself (``caps_in_flight``
  false, e.g. an Azure Batch account without the maxParallelTasks feature), a sweep with
  ``limits.max_concurrent_trials`` is not submitted up front: the controller streams its trials
  in index order, keeping at most that many pending or running.
- **Timeout**: when ``limits.timeout`` seconds have passed since the job was created, every
  trial not yet finished is stopped and no trial is added.
- **Halted** (``halt``): whatever runs the controller may end a sweep for its own reason (a
  budget reached, where the engine keeps budgets next to the controller): no trial is added; the
  caller stops the unfinished ones.
- **Restart**: a fresh instance adopts the trials that exist (replaying their parameters into
  the search in index order, so finished ones are told again) and continues after the highest
  index. Its search is seeded with the sweep's seed mixed with the number of adopted trials, so
  its first random (startup) proposals do not repeat the ones already run.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orchestrator.model import TaskInfo, TaskLaunch, TaskState
from orchestrator.spec.job import TaskSpec
from orchestrator.sweep.early_stop import trials_to_stop
from orchestrator.sweep.metrics_book import TrialMetricsBook
from orchestrator.sweep.replay import ReplayableSearch
from orchestrator.sweep.trial import Trial, trial_index, trial_task_id

RenderTrial = Callable[[Trial], TaskLaunch]
TOLD_STATES = frozenset({TaskState.SUCCEEDED, TaskState.STOPPED})
RESTART_SEED_STRIDE = 1_000_003


def is_adaptive(task: TaskSpec) -> bool:
    """True for a sweep task whose decisions need a controller while it runs (Bayesian sampling,
    early termination, a sweep timeout); see the module docstring."""
    if not task.is_sweep():
        return False
    timeout = task.limits.timeout if task.limits else None
    return task.sampling == "bayesian" or task.early_termination is not None or timeout is not None


def is_held(task: TaskSpec, *, caps_in_flight: bool) -> bool:
    """True for a sweep whose trials the controller streams to keep ``max_concurrent_trials``,
    because the engine cannot cap tasks in flight (Bayesian sweeps stream their trials anyway)."""
    return (not caps_in_flight and task.is_sweep() and task.sampling != "bayesian"
            and task.limits is not None and task.limits.max_concurrent_trials is not None)


def needs_controller(task: TaskSpec, *, caps_in_flight: bool) -> bool:
    """True for a sweep task whose trials a controller must drive (adaptive or held back)."""
    return is_adaptive(task) or is_held(task, caps_in_flight=caps_in_flight)


@dataclass
class Actions:
    """What one pass decided: trials to stop and trials to launch."""

    stop: list[str] = field(default_factory=list)
    launch: list[TaskLaunch] = field(default_factory=list)


class AdaptiveSweep:
    """Decisions for the trials of one adaptive sweep task (see the module docstring)."""

    def __init__(self, task: TaskSpec, base_id: str, render: RenderTrial, *, default_concurrency: int,
                 held: bool = False, trials: Callable[[], Iterator[Trial]] | None = None) -> None:
        """``held``: stream the sweep's trials (from ``trials()``, the sweep's expansion in index
        order) rather than find them submitted (see the module docstring)."""
        self.task, self.base_id, self.render = task, base_id, render
        self.held, self._expand = held and trials is not None, trials
        self._pending: Iterator[Trial] | None = None
        self._expansion_done = False
        limits = task.limits
        self.max_total = limits.max_total_trials if limits else None
        self.concurrency = (limits.max_concurrent_trials if limits else None) or max(1, default_concurrency)
        self.timeout = limits.timeout if limits else None
        self.objective = task.objective
        self.bayesian = task.sampling == "bayesian" and task.objective is not None
        self.search: ReplayableSearch | None = None
        self.search_index: dict[str, int] = {}
        self.told: set[str] = set()
        self.stop_sent: set[str] = set()
        self.next_index = 0
        self.adopted = False
        self.timed_out = False
        self.halted: str | None = None

    @property
    def wants_metrics(self) -> bool:
        return self.objective is not None and (self.bayesian or self.task.early_termination is not None)

    @property
    def exhausted(self) -> bool:
        """No trial will be added any more."""
        if self.timed_out or self.halted:
            return True
        if self.held:
            return self._expansion_done
        if not self.bayesian:
            return True
        return self.max_total is not None and len(self.search_index) >= self.max_total

    def halt(self, reason: str) -> None:
        """Add no trial any more, because of ``reason`` (see the module docstring)."""
        self.halted = reason

    def owns(self, task_id: str) -> bool:
        index = trial_index(task_id)
        return index is not None and trial_task_id(self.base_id, index) == task_id

    def settled(self, trials: Iterable[TaskInfo]) -> bool:
        """Nothing left to do: no trial will be added, every trial is finished and told."""
        return self.exhausted and all(t.state.is_terminal() and (not self.bayesian or t.id in self.told)
                                      for t in trials)

    def advance(self, trials: list[TaskInfo], book: TrialMetricsBook, *, elapsed: float) -> Actions:
        """One pass over this sweep's trials, ``elapsed`` seconds after the job was created."""
        actions = Actions()
        if not self.adopted:
            self._adopt(trials)
        if self.timeout is not None and elapsed >= self.timeout:
            self.timed_out = True
            actions.stop = [t.id for t in trials if not t.state.is_terminal() and t.id not in self.stop_sent]
        elif self.task.early_termination is not None and self.objective is not None:
            actions.stop = self._early_stops(trials, book)
        self.stop_sent.update(actions.stop)
        if self.search is not None:
            self._tell(trials, book)
        if self.search is not None or self.held:
            in_flight = sum(1 for t in trials if not t.state.is_terminal() and t.id not in self.stop_sent)
            while not self.exhausted and in_flight < self.concurrency:
                launch = self._ask() if self.search is not None else self._next_held()
                if launch is None:
                    break
                actions.launch.append(launch)
                in_flight += 1
        return actions

    def _adopt(self, trials: list[TaskInfo]) -> None:
        """Take over trials submitted before this instance existed (a restarted controller)."""
        self.adopted = True
        ordered = sorted(((trial_index(t.id) or 0, t) for t in trials), key=lambda pair: pair[0])
        if self.bayesian:
            assert self.objective is not None
            seed = self.task.effective_seed() + RESTART_SEED_STRIDE * len(ordered)
            self.search = ReplayableSearch(self.task.search_space or {}, self.objective, seed=seed)
        for index, trial in ordered:
            if self.search is not None:
                self.search_index[trial.id] = self.search.replay(dict(trial.params)).index
            if trial.state == TaskState.STOPPED:
                self.stop_sent.add(trial.id)
            self.next_index = max(self.next_index, index + 1)

    def _early_stops(self, trials: list[TaskInfo], book: TrialMetricsBook) -> list[str]:
        assert self.objective is not None and self.task.early_termination is not None
        histories = {t.id: book.history(t.id, self.objective.metric) for t in trials
                     if t.state != TaskState.PENDING}
        running = [t.id for t in trials if t.state == TaskState.RUNNING and t.id not in self.stop_sent]
        chosen = trials_to_stop(self.objective, self.task.early_termination, histories, running)
        return sorted(chosen)

    def _tell(self, trials: list[TaskInfo], book: TrialMetricsBook) -> None:
        assert self.search is not None and self.objective is not None
        maximize = self.objective.goal == "maximize"
        for trial in trials:
            if not trial.state.is_terminal() or trial.id in self.told or trial.id not in self.search_index:
                continue
            value = book.best(trial.id, self.objective.metric, maximize=maximize) \
                if trial.state in TOLD_STATES else None
            self.search.tell(self.search_index[trial.id], value)
            self.told.add(trial.id)

    def _next_held(self) -> TaskLaunch | None:
        """The next trial of a held-back sweep, after those already submitted; None at the end."""
        assert self._expand is not None
        if self._pending is None:
            self._pending = itertools.islice(self._expand(), self.next_index, None)
        trial = next(self._pending, None)
        if trial is None:
            self._expansion_done = True
            return None
        self.next_index = trial.index + 1
        return self.render(trial)

    def _ask(self) -> TaskLaunch:
        assert self.search is not None
        proposal = self.search.ask()
        trial = Trial(index=self.next_index, params=proposal.params)
        launch = self.render(trial)
        self.search_index[launch.id] = proposal.index
        self.next_index += 1
        return launch

    def describe(self) -> dict[str, Any]:
        """A summary for status displays."""
        return {"task": self.base_id, "trials": len(self.search_index) if self.search else None,
                "told": len(self.told), "stopped": len(self.stop_sent), "timed_out": self.timed_out,
                "halted": self.halted}
