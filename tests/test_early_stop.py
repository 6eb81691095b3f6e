"""Early-termination decisions on small hand-made histories, for both goals."""
from __future__ import annotations

from typing import Any

from orchestrator.spec.sweep import EarlyTermination, Objective
from orchestrator.sweep.early_stop import (
    average_up_to,
    best_up_to,
    latest_evaluation_step,
    trials_to_stop,
)

MAX = Objective(metric="acc", goal="maximize")
MIN = Objective(metric="loss", goal="minimize")

THREE = {
    "a": [(1, 0.8), (2, 0.9)],
    "b": [(1, 0.5), (2, 0.6)],
    "c": [(1, 0.2), (2, 0.3)],
}


def policy(name: str, **settings: Any) -> EarlyTermination:
    return EarlyTermination.model_validate({"policy": name, **settings})


def stop(objective: Objective, settings: EarlyTermination, histories: dict[str, Any],
         running: Any = None) -> set[str]:
    return trials_to_stop(objective, settings, histories, histories if running is None else running)


def test_evaluation_points_follow_interval_and_delay() -> None:
    history = [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (5, 0.0)]
    assert latest_evaluation_step(history, policy("median_stopping")) == 5
    assert latest_evaluation_step(history, policy("median_stopping", evaluation_interval=2)) == 4
    assert latest_evaluation_step(history, policy("median_stopping", evaluation_interval=2, delay_evaluation=5)) is None
    assert latest_evaluation_step(history, policy("median_stopping", evaluation_interval=5, delay_evaluation=5)) == 5
    assert latest_evaluation_step([(0, 1.0)], policy("median_stopping")) is None


def test_helpers_use_only_values_up_to_the_step() -> None:
    history = [(1, 0.5), (2, 0.9), (3, 0.1)]
    assert best_up_to(history, 2, maximize=True) == 0.9 and best_up_to(history, 3, maximize=False) == 0.1
    assert average_up_to(history, 2) == 0.7 and best_up_to(history, 0, maximize=True) is None


def test_median_stopping_maximize() -> None:
    # running averages at step 2: a 0.85, b 0.55, c 0.25 -> median 0.55; c's best 0.3 is below.
    assert stop(MAX, policy("median_stopping"), THREE) == {"c"}


def test_median_stopping_minimize() -> None:
    # same median 0.55; a's best (lowest) 0.8 is above it.
    assert stop(MIN, policy("median_stopping"), THREE) == {"a"}


def test_median_stopping_compares_young_trials_at_their_own_step() -> None:
    histories = {**THREE, "young": [(1, 0.4)]}
    # at step 1 the averages are 0.8, 0.5, 0.2, 0.4 -> median 0.45; 0.4 is worse.
    assert stop(MAX, policy("median_stopping"), histories, running=["young"]) == {"young"}
    histories["young"] = [(1, 0.5)]  # averages 0.8, 0.5, 0.2, 0.5 -> median 0.5: not worse
    assert stop(MAX, policy("median_stopping"), histories, running=["young"]) == set()


def test_median_stopping_needs_two_trials_and_respects_delay() -> None:
    assert stop(MAX, policy("median_stopping"), {"only": [(1, 0.1), (2, 0.0)]}) == set()
    assert stop(MAX, policy("median_stopping", delay_evaluation=3), THREE) == set()


def test_finished_trials_count_but_are_never_returned() -> None:
    assert stop(MAX, policy("median_stopping"), THREE, running=["a", "b"]) == set()
    assert stop(MAX, policy("median_stopping"), THREE, running=["c", "unknown"]) == {"c"}


FOUR = {
    "a": [(1, 0.7), (2, 0.9)],
    "b": [(1, 0.6), (2, 0.5)],
    "c": [(1, 0.1), (2, 0.3)],
    "d": [(1, 0.2), (2, 0.45)],
}


def test_truncation_selection_maximize() -> None:
    assert stop(MAX, policy("truncation_selection", truncation_percentage=25), FOUR) == {"c"}
    assert stop(MAX, policy("truncation_selection", truncation_percentage=50), FOUR) == {"c", "d"}


def test_truncation_selection_minimize() -> None:
    # best (lowest) so far: a 0.7, b 0.5, c 0.1, d 0.2
    assert stop(MIN, policy("truncation_selection", truncation_percentage=25), FOUR) == {"a"}
    assert stop(MIN, policy("truncation_selection", truncation_percentage=50), FOUR) == {"a", "b"}


def test_truncation_selection_spares_ties_and_small_groups() -> None:
    ties = {name: [(1, 0.5)] for name in "wxyz"}
    assert stop(MAX, policy("truncation_selection", truncation_percentage=25), ties) == set()
    three = {name: history for name, history in FOUR.items() if name != "d"}
    assert stop(MAX, policy("truncation_selection", truncation_percentage=25), three) == set()  # floor(0.75) = 0


def test_truncation_selection_ranks_young_trials_against_older_ones_at_the_same_step() -> None:
    histories = {**FOUR, "young": [(1, 0.15)]}
    # young is last against the step-2 scores (0.9, 0.6, 0.3, 0.45) but is judged at step 1:
    # 0.7, 0.6, 0.1, 0.2, 0.15 -> 25% of 5 = 1 cut, and that is c (0.1). c, judged at step 2
    # among the four that got there, is the lowest quarter too.
    assert stop(MAX, policy("truncation_selection", truncation_percentage=25), histories) == {"c"}


def test_bandit_slack_factor_maximize() -> None:
    histories = {"best": [(1, 0.5), (2, 0.9)], "close": [(1, 0.4), (2, 0.85)], "far": [(1, 0.45), (2, 0.8)]}
    # best 0.9 / 1.1 = 0.818...: 0.85 stays, 0.8 goes.
    assert stop(MAX, policy("bandit", slack_factor=0.1), histories) == {"far"}


def test_bandit_slack_amount_maximize() -> None:
    histories = {"best": [(1, 0.9)], "close": [(1, 0.75)], "far": [(1, 0.6)]}
    assert stop(MAX, policy("bandit", slack_amount=0.2), histories) == {"far"}  # bar 0.7


def test_bandit_slack_factor_minimize() -> None:
    histories = {"best": [(1, 0.2)], "close": [(1, 0.21)], "far": [(1, 0.25)]}
    assert stop(MIN, policy("bandit", slack_factor=0.1), histories) == {"far"}  # bar 0.22


def test_bandit_slack_amount_minimize_is_strict() -> None:
    histories = {"best": [(1, 0.2)], "edge": [(1, 0.25)], "far": [(1, 0.26)]}
    assert stop(MIN, policy("bandit", slack_amount=0.05), histories) == {"far"}  # bar 0.25


def test_bandit_uses_each_trials_best_and_the_leaders_value_at_that_step() -> None:
    histories = {
        "leader": [(1, 0.5), (2, 0.95)],
        "recovered": [(1, 0.45), (2, 0.2)],  # best so far 0.45 is kept
        "young": [(1, 0.44)],  # judged at step 1 against 0.5, not 0.95
    }
    assert stop(MAX, policy("bandit", slack_amount=0.1), histories) == {"recovered"}
    # at step 2 recovered's best is 0.45 < 0.95 - 0.1; young at step 1 is within 0.5 - 0.1.
    assert stop(MAX, policy("bandit", slack_amount=0.1, evaluation_interval=2), histories) == {"recovered"}


def test_bandit_bar_comes_from_the_best_run_at_that_interval_only() -> None:
    histories = {
        "leader": [(1, 0.70), (2, 0.75), (3, 0.80)],
        "young": [(1, 0.99)],  # one high value, not yet at step 3: it must not stop the leader
        "ended": [(1, 0.50), (2, 0.97)],  # ended before step 3
        "lagging": [(1, 0.5), (2, 0.55), (3, 0.6)],
    }
    assert stop(MAX, policy("bandit", slack_amount=0.1, evaluation_interval=3), histories) == {"lagging"}
    # the old bar (best of every trial so far, 0.99) would have stopped the leader too
    assert stop(MAX, policy("bandit", slack_amount=0.1, evaluation_interval=3),
                {"leader": histories["leader"], "lagging": histories["lagging"]}) == {"lagging"}


def test_a_trial_exactly_on_the_bar_continues_despite_float_rounding() -> None:
    # Azure ML's example: best 0.8, slack_amount 0.2: a run at 0.6 continues (0.8 - 0.2 = 0.6000000000000001)
    histories = {"best": [(1, 0.8)], "edge": [(1, 0.6)], "below": [(1, 0.59)]}
    assert stop(MAX, policy("bandit", slack_amount=0.2), histories) == {"below"}
    assert stop(MIN, policy("bandit", slack_amount=0.2), {"best": [(1, 0.2)], "edge": [(1, 0.4)]}) == set()
