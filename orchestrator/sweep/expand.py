"""One entry point for a task's sweep: how many trials (``count``) and the trials (``expand``).

``limits.max_total_trials`` caps every kind of sweep (a grid or a factory is cut after that many
trials). Callers show ``count`` before submitting and ask for confirmation above
``CONFIRM_ABOVE`` trials.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from orchestrator.spec.sweep import SweepFields
from orchestrator.sweep.search_space import count_search_space, expand_search_space
from orchestrator.sweep.task_factory import (
    BlobLister,
    count_task_factory,
    expand_task_factory,
)
from orchestrator.sweep.trial import Trial

CONFIRM_ABOVE = 100_000


def trial_limit(spec: SweepFields, limit: int | None = None) -> int | None:
    """The smaller of ``limit`` and ``limits.max_total_trials`` (None when neither is set)."""
    caps = [cap for cap in (limit, spec.limits.max_total_trials if spec.limits else None) if cap is not None]
    return min(caps) if caps else None


def count(spec: SweepFields, *, limit: int | None = None) -> int | None:
    """Trials ``expand`` yields, computed without expanding (a 10^12 grid is answered at once).

    None when only expansion can tell (file and custom factories). A task with no sweep is 1.
    """
    cap = trial_limit(spec, limit)
    if spec.search_space is not None:
        return count_search_space(spec.search_space, spec.sampling, limit=cap)
    if spec.task_factory is not None:
        return count_task_factory(spec.task_factory, limit=cap)
    return 1


def expand(spec: SweepFields, *, seed: int | None = None, limit: int | None = None, key_path: str = "",
           base_dir: Path | None = None, blob_lister: BlobLister | None = None) -> Iterator[Trial]:
    """Stream the task's trials, index 0 upward; a task with no sweep gives one trial, no params.

    ``seed`` overrides the spec's seed (default 0). Same spec and seed, same trials, in the same
    order, on any machine, so re-submission is idempotent. Bayesian sampling is not expanded up
    front: use ``orchestrator.sweep.bayes.BayesianSearch``. ``key_path``, ``base_dir`` and
    ``blob_lister`` are passed to ``expand_task_factory``; errors found while expanding are
    ``SpecError``.
    """
    cap = trial_limit(spec, limit)
    chosen_seed = seed if seed is not None else spec.effective_seed()
    if spec.search_space is not None:
        return expand_search_space(spec.search_space, spec.sampling, seed=chosen_seed, limit=cap)
    if spec.task_factory is not None:
        return expand_task_factory(spec.task_factory, seed=chosen_seed, limit=cap, key_path=key_path,
                                   base_dir=base_dir, blob_lister=blob_lister)
    return iter([Trial(index=0, params={})])
