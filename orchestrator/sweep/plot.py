"""``orch sweep results --plot FILE.png``: the objective against each parameter, and learning curves.

One panel per parameter (numeric parameters on a log axis when all values are positive and span
more than two decades, as loguniform ones do; other values as categories), then one panel of
learning curves (the objective metric against its step, one line per trial, the best trial
highlighted). Stopped trials are drawn hollow. matplotlib is imported on first use with the
non-interactive Agg backend, so no display is needed.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.sweep.results import TrialResult

LOG_SPAN = 100.0
PANEL_INCHES = 4.0


def write_plot(ranked: Sequence[TrialResult], metric: str, goal: str, path: Path) -> None:
    """Draw the figure for ``ranked`` (best first) and save it to ``path`` (format from its suffix)."""
    plt = _pyplot()
    params = sorted({name for result in ranked for name in result.task.params})
    panels = len(params) + 1
    columns = min(3, panels)
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(PANEL_INCHES * columns, PANEL_INCHES * 0.8 * rows),
                                squeeze=False)
    flat = [axis for row in axes for axis in row]
    for axis, name in zip(flat, params):
        _parameter_panel(axis, ranked, name, metric)
    _curves_panel(flat[len(params)], ranked, metric)
    for axis in flat[panels:]:
        axis.set_visible(False)
    figure.suptitle(f"{metric} ({goal}) over {len(ranked)} trials")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot write the plot to {path}: {exc}", hint="use a writable path ending in .png") from None
    finally:
        plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _parameter_panel(axis: Any, ranked: Sequence[TrialResult], name: str, metric: str) -> None:
    points = [(r.task.params[name], r.value, r.task.state.value == "stopped")
              for r in ranked if name in r.task.params and r.value is not None]
    values = [value for value, _, _ in points]
    numeric = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        xs: list[Any] = values
        if is_log_scale(values):
            axis.set_xscale("log")
    else:
        categories = sorted({str(v) for v in values})
        xs = [categories.index(str(v)) for v in values]
        axis.set_xticks(range(len(categories)), categories, rotation=30)
    for x, (_, value, stopped) in zip(xs, points):
        axis.scatter([x], [value], s=30, color="tab:blue", facecolors="none" if stopped else "tab:blue")
    if points:
        best_x = xs[0]
        axis.scatter([best_x], [points[0][1]], s=120, marker="*", color="tab:red", zorder=3, label="best")
        axis.legend(loc="best", fontsize="small")
    axis.set_xlabel(name)
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)


def is_log_scale(values: Sequence[float]) -> bool:
    """True when every value is positive and they span more than two decades."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SPAN


def _curves_panel(axis: Any, ranked: Sequence[TrialResult], metric: str) -> None:
    drawn = 0
    for position, result in enumerate(ranked):
        if len(result.history) < 1:
            continue
        steps = [step for step, _ in result.history]
        values = [value for _, value in result.history]
        best = position == 0
        style = "--" if result.task.state.value == "stopped" else "-"
        axis.plot(steps, values, style, marker="." if len(steps) < 30 else None, linewidth=2.5 if best else 1,
                  color="tab:red" if best else "tab:gray", alpha=1 if best else 0.6, zorder=3 if best else 2,
                  label=f"best: {result.task.id}" if best else None)
        drawn += 1
    if drawn:
        axis.legend(loc="best", fontsize="small")
    else:
        axis.text(0.5, 0.5, "no stepped metrics", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlabel("step")
    axis.set_ylabel(metric)
    axis.set_title("learning curves (dashed: stopped early)", fontsize="small")
    axis.grid(alpha=0.3)
