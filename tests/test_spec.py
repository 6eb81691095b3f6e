"""Spec models and loader: strict keys, positions in errors, ranges, dependencies."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError, SpecErrors
from orchestrator.spec.job import JobSpec
from orchestrator.spec.loader import load_any, load_job, load_pool
from orchestrator.spec.pool import PoolSpec

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, loader=load_job) -> str:
    with pytest.raises(SpecError) as info:
        loader(path)
    assert info.value.exit_code == 2
    return str(info.value)


def test_unknown_key_names_file_line_path_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "id: j\npool: p\ntasks:\n  - command: echo\n  - command: echo\n    resorces: {cpus: 1}\n")
    text = error_of(path)
    assert f"{path}:6:5: tasks[1].resorces: unknown key 'resorces'" in text
    assert "did you mean 'resources'?" in text


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "id: j\npool: p\ntasks:\n  - command: [echo\n"))
    assert "YAML syntax error" in text and "spec.yaml:" in text


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "id: j\nid: k\npool: p\ntasks: [{command: x}]\n"))
    assert "'id' appears twice" in text and ":2:1" in text


def test_task_ids_are_unique_ignoring_case_and_never_shadow_trial_ids(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "id: j\npool: p\ntasks:\n  - id: Eval\n    command: x\n"
                                    "  - id: eval\n    command: y\n"))
    assert ":6:" in text and "tasks[1].id" in text and "'eval' and 'Eval' (tasks[0]) differ only in case" in text
    text = error_of(write(tmp_path, "id: j\npool: p\ntasks:\n  - id: t\n    command: echo {{x}}\n"
                                    "    search_space: {x: {choice: [1, 2]}}\n  - id: T-00001\n    command: y\n"))
    assert ":7:" in text and "trial of sweep task 't'" in text
    text = error_of(write(tmp_path, "id: j\npool: p\ntasks:\n  - id: a\n    command: x\n"
                                    "    depends_on: [a, zz]\n"))
    assert ":6:" in text and "tasks[0].depends_on[1]" in text and "'zz', which is not a task" in text


def test_several_problems_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "id: j\npool: p\ntasks:\n  - command: ''\n  - command: x\n    max_wall_time: 10x\n")
    with pytest.raises(SpecErrors) as info:
        load_job(path)
    assert len(info.value.errors) == 2
    assert "tasks[0].command" in str(info.value) and "tasks[1].max_wall_time" in str(info.value)


@pytest.mark.parametrize("body, needle", [
    ("tasks: [{id: a, command: x}, {id: a, command: y}]", "'a' is used twice"),
    ("tasks: [{id: a, command: x, depends_on: [b]}, {id: b, command: y, depends_on: [a]}]", "cycle"),
    ("tasks: [{id: a, command: x, depends_on: [zz]}]", "'zz', which is not a task"),
    ("tasks: []", "tasks"),
    ("tasks: [{command: x, max_retries: -1}]", "max_retries"),
    ("tasks: [{command: x, resources: {cpus: 0}}]", "resources.cpus"),
    ("tasks: [{command: x, id: 'bad id!'}]", "not a valid id"),
    ("tasks: [{command: [1, 2]}]", "command"),
    ("tasks: [{command: x, env: {'1BAD': v}}]", "environment variable name"),
])
def test_job_errors(tmp_path: Path, body: str, needle: str) -> None:
    assert needle in error_of(write(tmp_path, f"id: j\npool: p\n{body}\n"))


@pytest.mark.parametrize("body, needle", [
    ("nodes: 0", "at least one node"),
    ("nodes: -1", "nodes"),
    ("cpus_per_node: 0", "cpus_per_node"),
    ("gpus_per_node: 99", "gpus_per_node"),
    ("backend: slurm", "backend"),
    ("nodes: {dedicated: 1, low_priority: 2}", "no low-priority"),
    ("ray: {adress: x}", "did you mean 'address'"),
])
def test_pool_errors(tmp_path: Path, body: str, needle: str) -> None:
    assert needle in error_of(write(tmp_path, f"id: p\n{body}\n"), load_pool)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    assert "file not found" in error_of(tmp_path / "nope.yaml")
    assert "empty" in error_of(write(tmp_path, ""))


def test_defaults_and_generated_ids(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, "id: j\npool: p\nmax_wall_time: 1h30m\ntasks:\n  - command: a\n  - id: named\n    command: [b]\n"))
    assert job.task_ids() == ["task-0", "named"]
    assert job.max_wall_time == 5400.0
    pool = load_pool(write(tmp_path, "id: p\nnodes: 3\ncpus_per_node: 2\n", "pool.yaml"))
    assert pool.nodes.dedicated == 3 and pool.slots_per_node == 2


def test_load_any_tells_pool_from_job(tmp_path: Path) -> None:
    assert isinstance(load_any(write(tmp_path, "id: p\n", "p.yaml")), PoolSpec)
    assert isinstance(load_any(write(tmp_path, "id: j\npool: p\ntasks: [{command: x}]\n", "j.yaml")), JobSpec)


@pytest.mark.parametrize("path", sorted((REPO / "templates").glob("*.yaml")) + sorted((REPO / "jobs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_example_yaml_loads(path: Path) -> None:
    load_any(path)
