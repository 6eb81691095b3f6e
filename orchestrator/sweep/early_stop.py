"""Early termination of sweep trials: pure decisions with Azure ML's policy semantics.

Input is each trial's history of the objective metric as ``(step, value)`` pairs (see
``orchestrator.sweep.metrics.metric_history``); output is the set of running trials to stop now.
Finished trials take part in comparisons but are never returned.

A step N is an evaluation point when N >= 1, N >= ``delay_evaluation`` and N is a multiple of
``evaluation_interval``. Each running trial is judged at its latest evaluation point N, using
only values reported at steps <= N by every trial, so a young trial is compared with what older
trials had reached at the same step. A trial's *score* at N is its best value up to N.

- ``median_stopping``: stop when the trial's score is worse than the median, over the trials
  that reached step N (itself included, at least two), of their running averages up to N.
- ``truncation_selection``: among the k trials that reached N, stop the trial when it is in the
  lowest ``floor(k * truncation_percentage / 100)``: i.e. when at least ``k - that many`` trials
  score strictly better (ties are never cut).
- ``bandit``: let best be the best score at N of the trials that reached N (the best performing
  run at that interval, as Azure ML defines it: a young trial that has not reached N, or one that
  ended before N, does not set the bar). Stop the trial when its score is worse than, for
  maximize, ``best / (1 + slack_factor)`` or ``best - slack_amount``; for minimize,
  ``best * (1 + slack_factor)`` or ``best + slack_amount``. Slack factors assume a positive
  metric, as in Azure ML.

"Worse" is strict and tolerant of float rounding: a score on the bar (0.6 against a bar of
0.8 - 0.2 = 0.6000000000000001) is not worse, as in Azure ML's own example, under every policy.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from orchestrator.spec.sweep import EarlyTermination, Objective

TrialKey = TypeVar("TrialKey", bound=Hashable)
History = Sequence[tuple[int, float]]
ROUNDING = 1e-9


def trials_to_stop(objective: Objective, policy: EarlyTermination, histories: Mapping[TrialKey, History],
                   running: Iterable[TrialKey]) -> set[TrialKey]:
    """The trials of ``running`` the policy stops now, given every trial's history."""
    judge = _Judge(objective, policy, histories)
    stop: set[TrialKey] = set()
    for trial in running:
        step = latest_evaluation_step(histories.get(trial, ()), policy)
        if step is not None and judge.should_stop(histories[trial], step):
            stop.add(trial)
    return stop


def latest_evaluation_step(history: History, policy: EarlyTermination) -> int | None:
    """The largest reported step that is an evaluation point, or None."""
    points = [step for step, _ in history
              if step >= max(1, policy.delay_evaluation) and step % policy.evaluation_interval == 0]
    return max(points, default=None)


class _Judge:
    """Applies one policy; what a step needs from all trials is computed once per step."""

    def __init__(self, objective: Objective, policy: EarlyTermination, histories: Mapping[TrialKey, History]) -> None:
        self.maximize = objective.goal == "maximize"
        self.policy = policy
        self.histories = histories
        self._cutoffs: dict[int, float | None] = {}

    def should_stop(self, history: History, step: int) -> bool:
        score = best_up_to(history, step, maximize=self.maximize)
        if score is None:
            return False
        if step not in self._cutoffs:
            self._cutoffs[step] = self._cutoff(step)
        cutoff = self._cutoffs[step]
        if cutoff is None:
            return False
        return _worse(score, cutoff, self.maximize)

    def _cutoff(self, step: int) -> float | None:
        if self.policy.policy == "median_stopping":
            return self._median_cutoff(step)
        if self.policy.policy == "truncation_selection":
            return self._truncation_cutoff(step)
        return self._bandit_cutoff(step)

    def _median_cutoff(self, step: int) -> float | None:
        averages = [average_up_to(history, step) for history in self.histories.values() if _reached(history, step)]
        known = [average for average in averages if average is not None]
        return statistics.median(known) if len(known) >= 2 else None

    def _truncation_cutoff(self, step: int) -> float | None:
        """The score a trial must beat to survive; None when nobody is cut."""
        scores = [best_up_to(history, step, maximize=self.maximize)
                  for history in self.histories.values() if _reached(history, step)]
        ranked = sorted((peer for peer in scores if peer is not None), reverse=self.maximize)
        assert self.policy.truncation_percentage is not None
        cut = math.floor(len(ranked) * self.policy.truncation_percentage / 100)
        if cut == 0:
            return None
        survivors = len(ranked) - cut
        # A trial is cut when at least `survivors` trials score strictly better than it.
        return ranked[survivors - 1]

    def _bandit_cutoff(self, step: int) -> float | None:
        scores = [best_up_to(history, step, maximize=self.maximize)
                  for history in self.histories.values() if _reached(history, step)]
        known = [peer for peer in scores if peer is not None]
        if not known:
            return None
        best = max(known) if self.maximize else min(known)
        factor, amount = self.policy.slack_factor, self.policy.slack_amount
        if factor is not None:
            return best / (1 + factor) if self.maximize else best * (1 + factor)
        assert amount is not None
        return best - amount if self.maximize else best + amount


def best_up_to(history: History, step: int, *, maximize: bool) -> float | None:
    """The best value reported at steps <= ``step``, or None."""
    values = [value for at, value in history if at <= step]
    if not values:
        return None
    return max(values) if maximize else min(values)


def average_up_to(history: History, step: int) -> float | None:
    """The mean of the values reported at steps <= ``step``, or None."""
    values = [value for at, value in history if at <= step]
    return statistics.fmean(values) if values else None


def _reached(history: History, step: int) -> bool:
    return any(at >= step for at, _ in history)


def _worse(value: float, reference: float, maximize: bool) -> bool:
    """Strictly worse, beyond float rounding (see the module docstring)."""
    if math.isclose(value, reference, rel_tol=ROUNDING, abs_tol=ROUNDING):
        return False
    return value < reference if maximize else value > reference
