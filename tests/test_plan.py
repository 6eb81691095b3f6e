"""Planning without a cluster: capacity checks, which sweeps are adaptive, what is sent up front,
dry-run of Bayesian sweeps, error places, the job index's sweep fields, ranking and the plot."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import CapacityError, SpecError, UnsupportedError, Where
from orchestrator.model import TaskInfo, TaskState
from orchestrator.plan import (
    check_fits,
    dry_run_launches,
    planned_trials,
    static_launches,
)
from orchestrator.records import job_index
from orchestrator.records.job_index import JobEntry
from orchestrator.spec.job import JobSpec
from orchestrator.spec.loader import load_job, place_error
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.adaptive import is_adaptive
from orchestrator.sweep.results import TrialResult, rank, resolve_objective, rows

REPO = Path(__file__).resolve().parent.parent

MIXED = {"id": "mixed", "pool": "p", "workdir": None, "tasks": [
    {"id": "prep", "command": "echo prep"},
    {"id": "grid", "command": "echo {{x}}", "search_space": {"x": {"choice": [1, 2, 3]}}},
    {"id": "bo", "command": "echo {{lr}}", "search_space": {"lr": {"loguniform": [1e-4, 1e-1]}},
     "sampling": "bayesian", "objective": {"metric": "acc", "goal": "maximize"},
     "limits": {"max_total_trials": 20, "max_concurrent_trials": 3}},
]}


def test_adaptive_sweeps_are_the_bayesian_early_stopped_or_timed_ones() -> None:
    job = JobSpec.model_validate(MIXED)
    assert [is_adaptive(task) for task in job.tasks] == [False, False, True]
    timed = {"command": "x {{a}}", "search_space": {"a": {"choice": [1]}}, "limits": {"timeout": "1h"}}
    assert is_adaptive(JobSpec.model_validate({**MIXED, "tasks": [timed]}).tasks[0])


def test_static_launches_skip_bayesian_trials_and_dry_run_shows_its_first_proposals() -> None:
    job = JobSpec.model_validate(MIXED)
    assert [launch.id for launch in static_launches(job)] == ["prep", "grid-00000", "grid-00001", "grid-00002"]
    shown = [launch.id for launch in dry_run_launches(job)]
    assert shown == ["prep", "grid-00000", "grid-00001", "grid-00002", "bo-00000", "bo-00001", "bo-00002"]
    again = [dict(launch.params) for launch in dry_run_launches(job)]
    assert again == [dict(launch.params) for launch in dry_run_launches(job)], "deterministic"
    assert planned_trials(job) == 1 + 3 + 20


def test_dry_run_of_a_bayesian_sweep_needs_no_cluster(tmp_path: Path) -> None:
    spec = tmp_path / "bo.yaml"
    spec.write_text("id: bo\npool: nowhere\nworkdir: null\ntasks:\n  - id: t\n    command: train --lr {{lr}}\n"
                    "    search_space: {lr: {loguniform: [0.0001, 0.1]}}\n    sampling: bayesian\n"
                    "    objective: {metric: acc, goal: maximize}\n"
                    "    limits: {max_total_trials: 9, max_concurrent_trials: 2}\n")
    done = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", str(spec), "--dry-run"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["t-00000", "t-00001"]
    assert all(1e-4 <= line["params"]["lr"] <= 0.1 for line in lines)


def test_expansion_errors_get_the_spec_files_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("id: j\npool: p\ntasks:\n  - command: echo {{0}}\n    task_factory:\n"
                    "      custom: {module: 'nowhere_xyz:make'}\n")
    error = SpecError("cannot import", where=Where(key_path="tasks[0].task_factory.custom.module"), hint="fix it")
    placed = place_error(error, spec)
    assert str(placed).startswith(f"{spec}:6:") and "tasks[0].task_factory.custom.module" in str(placed)
    assert placed.hint == "fix it" and placed.exit_code == 2
    assert place_error(SpecError("no key path"), spec).where is None


def test_job_index_keeps_sweep_fields_and_reads_old_entries(orch_home: Path) -> None:
    sweep = JobEntry(id="s", pool_id="p", backend="ray", kind="sweep", objective={"metric": "acc", "goal": "minimize"},
                     trials=12)
    first = job_index.record(sweep)
    assert job_index.record(sweep).submitted_at == first.submitted_at > 0  # re-submission keeps the first time
    entry = job_index.lookup("s")
    assert entry is not None and entry.kind == "sweep" and entry.trials == 12
    assert entry.objective == {"metric": "acc", "goal": "minimize"}
    old = orch_home / "jobs" / "old.json"
    old.write_text(json.dumps({"id": "old", "pool_id": "p", "backend": "ray", "submitted_at": 1.0, "kind": "job",
                               "from_the_future": True}))
    legacy = job_index.lookup("old")
    assert legacy is not None and legacy.objective is None and legacy.trials is None
    assert {e.id for e in job_index.entries()} == {"s", "old"}


def result(task_id: str, value: float | None, state: TaskState = TaskState.SUCCEEDED,
           **params: object) -> TrialResult:
    history = ((1, value / 2), (2, value)) if value is not None else ()
    return TrialResult(task=TaskInfo(id=task_id, job_id="j", state=state, params=params), value=value,
                       history=history, best_step=2 if value is not None else None)


def test_ranking_uses_the_recorded_objective_and_keeps_stopped_trials() -> None:
    objective = resolve_objective(None, None, {"metric": "loss", "goal": "minimize"})
    assert (objective.metric, objective.goal) == ("loss", "minimize")
    assert resolve_objective("acc", None, {"metric": "loss", "goal": "minimize"}).goal == "maximize"
    ranked = rank([result("a", 0.5), result("b", None), result("c", 0.2, TaskState.STOPPED), result("d", 0.9)],
                  "minimize")
    table = rows(ranked, "loss")
    assert [(r["trial"], r["state"]) for r in table] == [("c", "stopped"), ("a", "succeeded"), ("d", "succeeded"),
                                                          ("b", "succeeded")]
    assert table[0]["rank"] == 1 and table[0]["loss"] == 0.2 and table[-1]["loss"] is None


def test_plot_writes_a_png_with_log_axis_for_wide_parameters(tmp_path: Path) -> None:
    from orchestrator.sweep.plot import is_log_scale, write_plot

    trials = [result(f"t{i}", 0.1 * i, lr=10.0 ** -i, opt=("adam" if i % 2 else "sgd")) for i in range(1, 6)]
    trials.append(result("t9", 0.05, TaskState.STOPPED, lr=0.3, opt="sgd"))
    path = tmp_path / "sweep.png"
    write_plot(rank(trials, "maximize"), "acc", "maximize", path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert is_log_scale([1e-5, 1e-1]) and not is_log_scale([0.1, 0.5]) and not is_log_scale([-1.0, 100.0])
    with pytest.raises(SpecError):
        write_plot(trials, "acc", "maximize", tmp_path / "missing-dir" / "x.png")


def test_the_example_sweep_loads_and_expands() -> None:
    job = load_job(REPO / "jobs" / "lr_search.yaml")
    task = job.tasks[0]
    assert job.pool == "local" and is_adaptive(task) and task.sampling == "random"
    assert task.objective is not None and task.objective.metric == "val_accuracy"
    launches = list(static_launches(job))
    assert len(launches) == 12 and len({launch.params["lr"] for launch in launches}) == 12
    assert all("--lr" in str(launch.command) for launch in launches)


RAY_POOL = {"id": "p", "nodes": 2, "cpus_per_node": 2, "gpus_per_node": 1}


@pytest.mark.parametrize("task,error,message", [
    ({"command": "x", "resources": {"cpus": 3}}, CapacityError, "tasks[0] needs 3 CPUs but pool 'p' nodes have 2"),
    ({"command": "x", "resources": {"gpus": 2}}, CapacityError, "tasks[0] needs 2 GPUs"),
    ({"command": "x", "distributed": {"launcher": "horovod", "nodes": 3}}, CapacityError,
     "tasks[0].distributed asks 3 nodes but pool 'p' has 2"),
    ({"command": "x", "distributed": {"launcher": "mpi", "nodes": 2}}, UnsupportedError,
     "the ray backend cannot start launcher mpi"),
])
def test_check_fits_refuses_what_the_pool_cannot_run(task: dict[str, object], error: type[Exception],
                                                     message: str) -> None:
    job = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [{"command": "fine"}, task]})
    with pytest.raises(error) as raised:
        check_fits(job, PoolSpec.model_validate(RAY_POOL))
    assert message.replace("tasks[0]", "tasks[1]") in str(raised.value)


def test_check_fits_accepts_what_fits_and_explains_backend_limits() -> None:
    fits = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [
        {"command": "x", "resources": {"cpus": 2, "gpus": 1}},
        {"command": "y", "distributed": {"launcher": "torchrun", "nodes": "pool"}}]})
    check_fits(fits, PoolSpec.model_validate(RAY_POOL))
    mpi = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [
        {"command": "x", "distributed": {"launcher": "mpi", "nodes": 2}}]})
    with pytest.raises(UnsupportedError) as raised:
        check_fits(mpi, PoolSpec.model_validate(RAY_POOL))
    assert raised.value.exit_code == 2 and "ssh" in (raised.value.hint or "")
    lonely = PoolSpec.model_validate({"id": "p", "backend": "azure", "nodes": 2,
                                      "azure": {"vm_size": "D2s_v5", "inter_node_communication": False}})
    with pytest.raises(CapacityError, match="inter-node communication"):
        check_fits(mpi, lonely)
    check_fits(mpi, lonely.model_copy(update={"max_tasks_per_node": 1, "azure": lonely.azure.model_copy(  # type: ignore[attr-defined]
        update={"inter_node_communication": "auto"})}))
    blob = JobSpec.model_validate({"id": "j", "pool": "p", "inputs": [{"blob": "c/x", "to": "x"}],
                                  "tasks": [{"command": "x"}]})
    with pytest.raises(UnsupportedError, match="cannot read blob inputs"):
        check_fits(blob, PoolSpec.model_validate(RAY_POOL))
    check_fits(blob, lonely)


def test_max_concurrent_trials_on_an_engine_that_cannot_cap_is_held_back_for_the_controller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.backends.ray.spec import RayOptions
    from orchestrator.plan import make_plan

    capped = {"id": "t", "command": "echo {{x}}", "search_space": {"x": {"choice": [1, 2, 3]}},
              "limits": {"max_concurrent_trials": 2}}
    job = JobSpec.model_validate({"id": "j", "pool": "p", "workdir": None,
                                  "tasks": [{"id": "plain", "command": "true"}, capped]})
    pool = PoolSpec.model_validate(RAY_POOL)
    native = make_plan(job, pool, base_dir=REPO)
    assert native.controller is None and native.job.max_in_flight == 2 and native.job.seal
    assert [launch.id for launch in native.launches()] == ["plain", "t-00000", "t-00001", "t-00002"]
    monkeypatch.setattr(RayOptions, "caps_in_flight", property(lambda self: False))
    held = make_plan(job, pool, base_dir=REPO)
    assert held.controller is not None and not held.controller.caps_in_flight
    assert held.job.controlled and not held.job.seal and held.job.max_in_flight is None
    assert [launch.id for launch in held.launches()] == ["plain"]
    files = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [
        {"command": "cat {{file_path}}", "task_factory": {"file": {"local_path": "jobs"}},
         "limits": {"max_concurrent_trials": 2}}]})
    with pytest.raises(UnsupportedError, match="file task factory reads this machine's files"):
        make_plan(files, pool, base_dir=REPO)


def test_a_blob_file_factory_needs_a_backend_that_gives_tasks_blobs() -> None:
    job = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [{
        "command": "cat {{file_name}}", "task_factory": {"file": {"azure_storage": {"remote_path": "c/x"}}}}]})
    with pytest.raises(UnsupportedError, match="cannot give tasks blobs"):
        check_fits(job, PoolSpec.model_validate(RAY_POOL))
