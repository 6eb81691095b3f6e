"""Placeholder substitution: hostile values reach the program as literal text, for real."""
from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.errors import SpecError
from orchestrator.sweep.substitute import (
    check,
    env_name,
    format_value,
    param_env,
    placeholders,
    render,
)

HOSTILE = [
    "x; rm -rf ~",
    "$(id)",
    "`id`",
    "a'b\"c",
    "it's \"quoted\" $HOME \\ back",
    "line1\nline2",
    "--flag=*",
    "",
    "  spaced  ",
]


def run_shell(command: str) -> str:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True).stdout


def test_placeholders_allow_spaces_and_lists() -> None:
    assert placeholders("train --lr {{lr}} --bs {{ batch_size }} {{0}}") == {"lr", "batch_size", "0"}
    assert placeholders(["python", "x.py", "--opt={{ opt }}", "{{model.name}}"]) == {"opt", "model.name"}
    assert placeholders("no {placeholders} here {{ }}") == set()


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("template, expected", [
    ("printf '%s' {{v}}", "{}"),
    ('printf "%s" "--v={{v}}"', "--v={}"),
    ("printf '%s' '--v={{ v }}'", "--v={}"),
    ("printf '%s' pre{{v}}post", "pre{}post"),
])
def test_shell_render_passes_hostile_values_literally(value: str, template: str, expected: str) -> None:
    rendered = render(template, {"v": value})
    assert isinstance(rendered, str)
    assert run_shell(rendered) == expected.format(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_list_render_keeps_each_value_in_its_argv_item(value: str) -> None:
    command = [sys.executable, "-c", "import sys; print(repr(sys.argv[1:]))", "--v={{v}}", "{{v}}", "{{n}}"]
    rendered = render(command, {"v": value, "n": 3})
    assert rendered == [*command[:3], f"--v={value}", value, "3"]
    output = subprocess.run(rendered, capture_output=True, text=True, check=True).stdout
    assert output.strip() == repr([f"--v={value}", value, "3"])


def test_values_are_formatted_for_command_lines() -> None:
    assert render("f {{a}} {{b}} {{c}} {{d}} {{e}} {{f}}",
                  {"a": 0.1, "b": True, "c": 3, "d": None, "e": [1, "x"], "f": {"k": 1}}) == \
        "f 0.1 true 3 '' '[1, \"x\"]' '{\"k\": 1}'"
    assert format_value(1e-5) == "1e-05" and format_value(0.30000000000000004) == "0.30000000000000004"


def test_missing_placeholder_is_a_spec_error_naming_it() -> None:
    with pytest.raises(SpecError) as caught:
        render("train --lr {{lr}} --wd {{ wd }}", {"lr": 0.1}, key_path="tasks[3].command")
    assert "{{wd}}" in caught.value.message and "{{lr}}" not in caught.value.message
    assert caught.value.where is not None and caught.value.where.key_path == "tasks[3].command"
    assert caught.value.hint is not None and "lr" in caught.value.hint


def test_check_warns_about_unused_parameters_and_raises_for_missing() -> None:
    warnings = check(["train {{lr}}", ["eval", "{{ lr }}"]], ["lr", "momentum"], key_path="tasks[0]")
    assert len(warnings) == 1 and "'momentum'" in warnings[0] and "ORCH_PARAM_MOMENTUM" in warnings[0]
    assert check(["x {{0}} {{1}}"], ["0", "1"]) == []
    with pytest.raises(SpecError, match=r"\{\{2\}\}"):
        check(["x {{0}} {{2}}"], ["0", "1"])


def test_param_env_names_and_values() -> None:
    env = param_env({"lr": 0.001, "batch-size": 32, "use.amp": False, "0": "a b", "layers": [64, 32], "none": None})
    assert env == {
        "ORCH_PARAM_LR": "0.001",
        "ORCH_PARAM_BATCH_SIZE": "32",
        "ORCH_PARAM_USE_AMP": "false",
        "ORCH_PARAM_0": "a b",
        "ORCH_PARAM_LAYERS": "[64, 32]",
        "ORCH_PARAM_NONE": "",
    }
    assert env_name("model.lr") == "ORCH_PARAM_MODEL_LR"
    with pytest.raises(SpecError, match="both become ORCH_PARAM_A_B"):
        param_env({"a-b": 1, "a_b": 2})


def test_shipyard_placeholders_are_refused_with_how_orch_writes_them() -> None:
    with pytest.raises(SpecError) as named:
        check(["blastp -query {file_name} > {file_name_no_extension}.hits"],
              ["file_name", "file_name_no_extension", "url"], key_path="tasks[0].command")
    assert "Shipyard's placeholders {file_name}, {file_name_no_extension}" in str(named.value)
    assert "{{file_name}}" in (named.value.hint or "")
    with pytest.raises(SpecError, match=r"Shipyard's placeholders \{\}"):
        check(["sleep {}"], ["0"])
    assert check(["awk '{print $1}' {{x}}"], ["x"]) == []  # braces that are not placeholders are fine
