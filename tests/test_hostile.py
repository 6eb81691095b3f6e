"""Hostile spec files through the real CLI under a memory limit: each is refused with exit 2,
file:line and no traceback (alias bombs, tags, deep nesting, bad encodings, empty files, huge
numbers, bad durations, path-like ids, bad addresses, placeholders without a parameter)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_job
from orchestrator.spec.yaml_source import MAX_FILE_BYTES, parse_yaml

MEMORY_LIMIT = 512 * 2**20  # bytes of address space: the bombs below once took 24 GB
JOB = b"id: j\npool: p\n"
TASKS = b"tasks: [{command: echo}]\n"


def billion_laughs(levels: int = 9) -> bytes:
    lines = [b"id: j", b"pool: p", b"l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [".encode() + b", ".join([f"*l{level - 1}".encode()] * 9) + b"]")
    return b"\n".join(lines) + b"\ntasks: [{command: echo, env: {X: *l%d}}]\n" % levels


CORPUS: dict[str, tuple[bytes, int]] = {
    # name: (file content, the line the error must name)
    "alias-bomb": (billion_laughs(), 8),
    "alias-bomb-merge": (JOB + b"a: &a {x: 1, y: 2}\n" + b"".join(
        b"m%d: &m%d {<<: [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]}\n" % ((i, i) + ((b"a" if i == 0 else b"m%d" % (i - 1)),) * 8)
        for i in range(8)) + TASKS, 8),
    "alias-recursive": (JOB + b"x: &x [1, *x]\n" + TASKS, 3),
    "tag-python-apply": (JOB + b"tasks:\n  - command: !!python/object/apply:os.system ['echo pwned']\n", 4),
    "tag-python-name": (JOB + b"tasks:\n  - command: !!python/name:os.system\n", 4),
    "tag-custom": (JOB + TASKS + b"env: !secret {A: b}\n", 4),
    "tag-binary": (JOB + TASKS + b"env: {A: !!binary aGk=}\n", 4),
    "tag-set": (JOB + TASKS + b"env: !!set {a, b}\n", 4),
    "deep-flow": (JOB + b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n" + TASKS, 3),
    "deep-mapping": (JOB + b"x: " + b"{a: " * 5000 + b"1" + b"}" * 5000 + b"\n" + TASKS, 3),
    "deep-block": (JOB + b"x:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 400)) + TASKS, 103),
    "not-utf8": (JOB + b"tasks:\n  - command: echo \xff\xfe\n", 4),
    "utf16": ("id: j\npool: p\n".encode("utf-16"), 1),
    "control-character": (JOB + b"tasks: [{command: \"a\x07b\"}]\n", 3),
    "empty": (b"", 1),
    "comments-only": (b"# nothing here\n\n   # still nothing\n", 1),
    "two-documents": (JOB + TASKS + b"---\nid: k\n", 4),
    "huge-int": (JOB + b"max_retries: " + b"9" * 5000 + b"\n" + TASKS, 3),
    "huge-retries": (JOB + b"max_retries: 99999999999999999999999999999\n" + TASKS, 3),
    "huge-float-cpus": (JOB + b"tasks: [{command: echo, resources: {cpus: 1e999999}}]\n", 3),
    "nan-cpus": (JOB + b"tasks: [{command: echo, resources: {cpus: .nan}}]\n", 3),
    "duration-huge": (JOB + b"max_wall_time: 99999999999999999999d\n" + TASKS, 3),
    "duration-inf": (JOB + b"max_wall_time: .inf\n" + TASKS, 3),
    "duration-negative": (JOB + b"tasks: [{command: echo, max_wall_time: -5s}]\n", 3),
    "duration-units-twice": (JOB + b"max_wall_time: 1h1h\n" + TASKS, 3),
    "duration-garbage": (JOB + b"max_wall_time: 10 fortnights\n" + TASKS, 3),
    "id-path": (b"id: ../../etc/passwd\npool: p\n" + TASKS, 1),
    "pool-path": (b"id: j\npool: ../pools/probe\n" + TASKS, 2),
    "task-id-path": (JOB + b"tasks: [{id: a/../../b, command: echo}]\n", 3),
    "depends-on-path": (JOB + b"tasks: [{id: a, command: echo, depends_on: [../a]}]\n", 3),
    "id-300": (b"id: " + b"j" * 300 + b"\npool: p\n" + TASKS, 1),
    "id-newline": (b"id: \"j\\n\"\npool: p\n" + TASKS, 1),
    "too-many-values": (JOB + b"x: [" + b"1," * (8 * 2**20 - 40) + b"1]\n" + TASKS, 3),
    "placeholder-without-parameter": (JOB + b"tasks:\n  - command: train --lr {{lr}} --x {{nope}}\n"
                                      b"    search_space: {lr: {choice: [0.1, 0.2]}}\n", 4),
}


VALIDATE_ONLY = {"placeholder-without-parameter", "too-many-values"}  # the latter: 7 s each


def orch_limited(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["prlimit", f"--as={MEMORY_LIMIT}", "--", sys.executable, "-m", "orchestrator", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_file_is_refused_with_its_line_in_bounded_memory(tmp_path: Path, name: str) -> None:
    content, line = CORPUS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    # jobs add loads the file before anything else (a placeholder is found once the pool is known)
    commands = [["validate", path.name]] + ([["jobs", "add", path.name]] if name not in VALIDATE_ONLY else [])
    for command in commands:
        proc = orch_limited(*command, cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr[-2000:]
        assert re.search(rf"{re.escape(path.name)}:{line}(:\d+)?: ", proc.stderr), (command, proc.stderr[-2000:])


def test_the_memory_limit_lets_a_good_file_through(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_bytes(JOB + TASKS)
    proc = orch_limited("validate", "good.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_pool_file_with_a_bad_ray_address_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pool.yaml").write_text("id: p\nray:\n  address: 'not an address'\n")
    proc = orch_limited("validate", "pool.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "pool.yaml:3:3: ray.address" in proc.stderr, proc.stderr


def test_oversized_and_special_files_are_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: refused from its size alone
    proc = orch_limited("validate", "big.yaml", "/dev/zero", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "big.yaml is 16 MiB" in proc.stderr and "/dev/zero is not a regular file" in proc.stderr


def test_alias_within_budget_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("id: j\npool: p\nenv: &env {A: '1'}\ntasks:\n  - command: echo\n    env: {<<: *env, B: '2'}\n"
                    "  - command: echo\n    env: *env\n")
    job = load_job(path)
    assert dict(job.tasks[0].env) == {"A": "1", "B": "2"} and dict(job.tasks[1].env) == {"A": "1"}


@pytest.mark.parametrize("text, value", [
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("010", 10), ("1:30", "1:30"), ("1e-3", 0.001),
    ("2024-01-01", "2024-01-01"), ("1_000", "1_000"), ("0o17", 15), ("0x1F", 31), ("true", True), ("~", None),
    (".inf", float("inf")), ("-.INF", float("-inf")), ("'yes'", "yes"),
])
def test_yaml_12_core_schema(text: str, value: object) -> None:
    assert parse_yaml(f"v: {text}\n", "f.yaml").data["v"] == value


def test_scalars_yaml_11_reads_differently_are_warned_with_their_place() -> None:
    source = parse_yaml("id: j\nchoice: [yes, 'no', 010, 12, 1:30, true]\nenv: {A: on}\n", "s.yaml")
    assert len(source.warnings) == 4, source.warnings
    first, octal, sexagesimal, env = source.warnings
    assert first.startswith("s.yaml:2:10: choice[0]: yes reads as the string 'yes' (YAML 1.2") and "true" in first
    assert octal.startswith("s.yaml:2:21: choice[2]: 010 reads as 10") and "as 8 in YAML 1.1" in octal
    assert sexagesimal.startswith("s.yaml:2:30: choice[4]") and "as 90 in YAML 1.1" in sexagesimal
    assert env.startswith("s.yaml:3:10: env.A: on")


def test_cli_prints_the_yaml_11_warnings(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("id: j\npool: p\ntasks:\n  - command: echo {{x}}\n"
                                       "    search_space: {x: {choice: [yes, no]}}\n")
    for command in (["validate", "job.yaml"], ["sweep", "job.yaml", "--dry-run"]):
        proc = orch_limited(*command, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "warning: job.yaml:5:33: tasks[0].search_space.x.choice[0]: yes reads as the string 'yes'" in proc.stderr


def test_warnings_are_capped() -> None:
    source = parse_yaml("v: [" + ", ".join(["yes"] * 50) + "]\n", "f.yaml")
    assert len(source.warnings) == 21 and "30 more" in source.warnings[-1]


def test_errors_are_spec_errors_in_process(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(billion_laughs())
    with pytest.raises(SpecError, match="alias bomb"):
        load_job(path)
