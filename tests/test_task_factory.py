"""Task-factory expansion with Batch Shipyard's semantics, trial ids, counts and streaming."""
from __future__ import annotations

import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.errors import SpecError
from orchestrator.spec.factory import TaskFactory
from orchestrator.spec.sweep import SweepFields
from orchestrator.sweep.expand import count, expand
from orchestrator.sweep.task_factory import (
    ListedFile,
    count_task_factory,
    expand_task_factory,
)
from orchestrator.sweep.trial import Trial, trial_index, trial_task_id


def trials(factory: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    options.setdefault("seed", 0)
    options.setdefault("limit", None)
    return [t.params for t in expand_task_factory(TaskFactory.model_validate(factory), **options)]


def counted(factory: dict[str, Any]) -> int | None:
    return count_task_factory(TaskFactory.model_validate(factory), limit=None)


def test_product_of_ranges_like_shipyard() -> None:
    ranges = [{"start": 0, "stop": 3, "step": 1}, {"start": 100, "stop": 97, "step": -1}]
    factory = {"parametric_sweep": {"product": ranges}}
    got = trials(factory)
    assert got[:4] == [{"0": 0, "1": 100}, {"0": 0, "1": 99}, {"0": 0, "1": 98}, {"0": 1, "1": 100}]
    assert len(got) == counted(factory) == 9


def test_product_of_huge_ranges_streams_and_counts() -> None:
    factory = {"parametric_sweep": {"product": [{"start": 0, "stop": 10**9}, {"start": 0, "stop": 10**9}]}}
    assert counted(factory) == 10**18
    assert trials(factory, limit=2) == [{"0": 0, "1": 0}, {"0": 0, "1": 1}]


def test_product_iterables_and_names() -> None:
    factory = {"parametric_sweep": {"product_iterables": [["a", "b"], [1, 2]]}, "names": ["letter", "n"]}
    assert trials(factory) == [
        {"letter": "a", "n": 1}, {"letter": "a", "n": 2}, {"letter": "b", "n": 1}, {"letter": "b", "n": 2}]
    assert counted(factory) == 4


def test_combinations_permutations_and_zip_like_shipyard() -> None:
    combos = {"parametric_sweep": {"combinations": {"iterable": ["abc", "012", "def"], "length": 2}}}
    assert trials(combos) == [{"0": "abc", "1": "012"}, {"0": "abc", "1": "def"}, {"0": "012", "1": "def"}]
    with_replacement = {"parametric_sweep": {"combinations": {"iterable": "ab", "length": 2, "replacement": True}}}
    assert trials(with_replacement) == [{"0": "a", "1": "a"}, {"0": "a", "1": "b"}, {"0": "b", "1": "b"}]
    assert counted(combos) == 3 and counted(with_replacement) == 3
    perms = {"parametric_sweep": {"permutations": {"iterable": ["abc", "012", "def"], "length": 2}}}
    assert [tuple(p.values()) for p in trials(perms)] == [
        ("abc", "012"), ("abc", "def"), ("012", "abc"), ("012", "def"), ("def", "abc"), ("def", "012")]
    assert counted(perms) == 6
    zipped = {"parametric_sweep": {"zip": ["abc", "012", "def"]}}  # strings iterate by character
    assert trials(zipped) == [
        {"0": "a", "1": "0", "2": "d"}, {"0": "b", "1": "1", "2": "e"}, {"0": "c", "1": "2", "2": "f"}]
    assert counted(zipped) == 3


def test_random_integers_are_reproducible_and_in_range() -> None:
    factory = {"random": {"generate": 50, "integer": {"start": 0, "stop": 10, "step": 2}}}
    first = trials(factory, seed=4)
    assert first == trials(factory, seed=4) != trials(factory, seed=5)
    assert {p["0"] for p in first} <= {0, 2, 4, 6, 8} and len(first) == counted(factory) == 50


def test_random_factory_seed_wins_over_the_task_seed() -> None:
    factory = {"random": {"generate": 5, "seed": 11, "distribution": {"uniform": {"a": 0, "b": 1}}}}
    assert trials(factory, seed=1) == trials(factory, seed=2)


@pytest.mark.parametrize("distribution, check", [
    ({"uniform": {"a": 2, "b": 3}}, lambda v: 2 <= v <= 3),
    ({"triangular": {"low": 0, "high": 1, "mode": 0.9}}, lambda v: 0 <= v <= 1),
    ({"triangular": {"low": 0, "high": 1}}, lambda v: 0 <= v <= 1),
    ({"beta": {"alpha": 2, "beta": 5}}, lambda v: 0 <= v <= 1),
    ({"exponential": {"lambda": 4}}, lambda v: v >= 0),
    ({"gamma": {"alpha": 2, "beta": 1}}, lambda v: v > 0),
    ({"gauss": {"mu": 100, "sigma": 1}}, lambda v: 90 < v < 110),
    ({"lognormal": {"mu": 0, "sigma": 0.5}}, lambda v: v > 0),
    ({"pareto": {"alpha": 3}}, lambda v: v >= 1),
    ({"weibull": {"alpha": 1, "beta": 2}}, lambda v: v >= 0),
])
def test_random_distributions_use_python_random_semantics(distribution: dict[str, Any], check: Any) -> None:
    values = [p["0"] for p in trials({"random": {"generate": 200, "distribution": distribution}, "names": None})]
    assert len(values) == 200 and all(check(v) for v in values)


def test_repeat_gives_identical_empty_trials() -> None:
    assert trials({"repeat": 3}) == [{}, {}, {}]
    assert counted({"repeat": 3}) == 3


def make_tree(root: Path) -> None:
    for relative in ["a.tar.gz", "b.txt", "sub/c.txt", "sub/deep/d.bin", ".hidden"]:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)


def test_file_factory_walks_local_files_in_sorted_order(tmp_path: Path) -> None:
    make_tree(tmp_path / "data")
    got = trials({"file": {"local_path": "data"}}, base_dir=tmp_path)
    assert [p["file_path"] for p in got] == [".hidden", "a.tar.gz", "b.txt", "sub/c.txt", "sub/deep/d.bin"]
    tarball = got[1]
    assert tarball["file_name"] == "a.tar.gz" and tarball["file_name_no_extension"] == "a"  # as Shipyard names it
    assert tarball["url"] == (tmp_path / "data" / "a.tar.gz").resolve().as_uri()
    assert counted({"file": {"local_path": "data"}}) is None


def test_file_factory_order_is_sorted_path_order_across_folders(tmp_path: Path) -> None:
    for relative in ["b.txt", "a/x.txt", "a.txt", "a-1", "a0", "c/z/deep.txt", "c.txt"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(relative)
    got = [p["file_path"] for p in trials({"file": {"local_path": str(tmp_path)}})]
    assert got == sorted(got) == ["a-1", "a.txt", "a/x.txt", "a0", "b.txt", "c.txt", "c/z/deep.txt"]


def test_file_factory_filters(tmp_path: Path) -> None:
    make_tree(tmp_path)
    def paths(**spec: Any) -> list[str]:
        return [p["file_path"] for p in trials({"file": {"local_path": str(tmp_path), **spec}})]
    assert paths(include=["*.txt"]) == ["b.txt", "sub/c.txt"]  # '*' crosses '/' as in fnmatch
    assert paths(include=["*.txt", "*.bin"], exclude=["sub/*"]) == ["b.txt"]
    assert paths(recursive=False) == [".hidden", "a.tar.gz", "b.txt"]


def test_file_factory_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as missing:
        trials({"file": {"local_path": "nope"}}, base_dir=tmp_path, key_path="tasks[1]")
    assert missing.value.where is not None and missing.value.where.key_path == "tasks[1].task_factory.file.local_path"


def test_blob_prefix_says_how_to_write_it() -> None:
    with pytest.raises(ValidationError, match="azure_storage: {remote_path: container/prefix}"):
        TaskFactory.model_validate({"file": {"blob_prefix": "container/dir"}})


@pytest.fixture
def generator_module(tmp_path: Path) -> Iterator[str]:
    name = f"orch_test_gen_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "def generate(*args, **kwargs):\n"
        "    for arg in args:\n"
        "        for x in range(arg):\n"
        "            yield (x,)\n"
        "def named(scale=1):\n"
        "    yield {'lr': 0.1 * scale, 'opt': 'adam'}\n"
        "    yield {'lr': 0.2 * scale, 'opt': 'sgd'}\n"
        "def scalars():\n"
        "    return ['a', 'b']\n"
        "def breaks():\n"
        "    yield (1,)\n"
        "    raise RuntimeError('disk full')\n"
        "def bad_keys():\n"
        "    yield {1: 'x'}\n"
    )
    yield name
    sys.modules.pop(name, None)


def test_custom_factory_like_shipyard(tmp_path: Path, generator_module: str) -> None:
    got = trials({"custom": {"module": generator_module, "input_args": [1, 2, 3]}}, base_dir=tmp_path)
    assert [p["0"] for p in got] == [0, 0, 1, 0, 1, 2]
    assert str(tmp_path) not in sys.path  # only added while importing


def test_custom_factory_dicts_scalars_and_names(tmp_path: Path, generator_module: str) -> None:
    named = trials({"custom": {"module": f"{generator_module}:named", "kwargs": {"scale": 10}}}, base_dir=tmp_path)
    assert named == [{"lr": 1.0, "opt": "adam"}, {"lr": 2.0, "opt": "sgd"}]
    scalars = trials({"custom": {"module": f"{generator_module}:scalars"}, "names": ["letter"]}, base_dir=tmp_path)
    assert scalars == [{"letter": "a"}, {"letter": "b"}]


@pytest.mark.parametrize("target, message", [
    ("orch_no_such_module_xyz", "cannot import custom factory module 'orch_no_such_module_xyz': ModuleNotFoundError"),
    ("{module}:missing", "has no function 'missing'"),
    ("{module}:breaks", "failed after 1 items: RuntimeError: disk full"),
    ("{module}:bad_keys", "not parameter names"),
    ("{module}:scalars", "TypeError: scalars() got an unexpected keyword argument"),
])
def test_custom_factory_failures_are_spec_errors(tmp_path: Path, generator_module: str, target: str,
                                                  message: str) -> None:
    module = target.format(module=generator_module)
    kwargs = {"kwargs": {"nope": 1}} if target.endswith(":scalars") else {}
    with pytest.raises(SpecError) as caught:
        trials({"custom": {"module": module, **kwargs}}, base_dir=tmp_path, key_path="tasks[0]")
    assert message in str(caught.value)
    assert caught.value.where is not None and caught.value.where.key_path == "tasks[0].task_factory.custom.module"


def test_sweep_entry_points_cap_factories_and_handle_plain_tasks() -> None:
    spec = SweepFields.model_validate({"task_factory": {"repeat": 10}, "limits": {"max_total_trials": 4}})
    assert count(spec) == 4 and [t.index for t in expand(spec)] == [0, 1, 2, 3]
    plain = SweepFields.model_validate({})
    assert count(plain) == 1 and list(expand(plain)) == [Trial(index=0, params={})]


def test_random_factory_streams_a_million_trials_in_constant_memory() -> None:
    factory = {"random": {"generate": 1_000_000, "integer": {"start": 0, "stop": 9}}}
    spec = SweepFields.model_validate({"task_factory": factory})
    tracemalloc.start()
    try:
        seen = sum(1 for _ in islice(expand(spec), 200_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 200_000 and count(spec) == 1_000_000
    assert peak < 2 * 1024 * 1024


def test_trial_task_ids_are_deterministic_and_valid_batch_ids() -> None:
    assert trial_task_id("trial", 17) == "trial-00017"
    assert trial_task_id("train_lr", 123456) == "train_lr-123456"
    long_a, long_b = "a" * 70, "a" * 69 + "b"
    ids = {trial_task_id(long_a, 3), trial_task_id(long_b, 3)}
    assert len(ids) == 2 and all(len(i) <= 64 and i.endswith("-00003") for i in ids)
    assert trial_task_id(long_a, 3) == trial_task_id(long_a, 3)
    assert trial_index("trial-00017") == 17 and trial_index("train") is None
    with pytest.raises(SpecError, match="cannot name trials"):
        trial_task_id("bad id!", 0)


BLAST_FACTORY = {"file": {"azure_storage": {"storage_account_settings": "mystorageaccount",
                                            "remote_path": "blast/output/fasta-chunks",
                                            "include": ["output/fasta-chunks/query-*.fa"]},
                          "task_filepath": "file_name"}}


def test_shipyards_blast_recipe_file_factory_runs_unchanged_through_a_blob_lister() -> None:
    """Batch Shipyard's BLAST-CPU recipe (jobs-blast.yaml) lists chunks in blob storage: 3 tasks."""
    asked: list[tuple[str, str]] = []

    def lister(container: str, prefix: str) -> list[ListedFile]:
        asked.append((container, prefix))
        names = ["output/fasta-chunks/query-0.fa", "output/fasta-chunks/query-1.fa",
                 "output/fasta-chunks/query-2.fa", "output/fasta-chunks/notes.txt"]
        return [ListedFile(path=name, url=f"https://acct.blob/blast/{name}", container=container) for name in names]

    got = list(expand_task_factory(TaskFactory.model_validate(BLAST_FACTORY), seed=0, limit=None, blob_lister=lister))
    assert asked == [("blast", "output/fasta-chunks/")]
    assert [trial.params["file_name"] for trial in got] == ["query-0.fa", "query-1.fa", "query-2.fa"]
    first = got[0]
    assert first.params["file_path"] == "output/fasta-chunks/query-0.fa"
    assert first.params["file_path_with_container"] == "blast/output/fasta-chunks/query-0.fa"
    assert first.params["file_name_no_extension"] == "query-0" and "sig" not in first.params["url"]
    assert [(item.to, item.blob) for item in first.inputs] == [("query-0.fa", "blast/output/fasta-chunks/query-0.fa")]


def test_blob_file_factories_need_a_lister_and_refuse_what_orch_does_not_do() -> None:
    with pytest.raises(SpecError, match="lists blobs through its pool's backend"):
        list(expand_task_factory(TaskFactory.model_validate(BLAST_FACTORY), seed=0, limit=None))
    with pytest.raises(ValidationError, match="file shares are not supported"):
        TaskFactory.model_validate({"file": {"azure_storage": {"remote_path": "s/x", "is_file_share": True}}})
    with pytest.raises(ValidationError, match="task_filepath applies to azure_storage"):
        TaskFactory.model_validate({"file": {"local_path": "x", "task_filepath": "file_name"}})
