"""The CLI without a cluster: help, start-up imports, validate/schema/init, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli.root import cli

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=120)


def test_help_imports_no_sdk() -> None:
    code = ("import sys; from orchestrator.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('ray', 'azure', 'torch', 'pydantic', 'rich')]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out


def test_every_subcommand_has_help() -> None:
    runner = CliRunner()
    for group, subs in {"pool": ["create", "list", "show", "resize", "delete"],
                        "jobs": ["add", "list", "show", "cancel", "delete"]}.items():
        for sub in subs:
            result = runner.invoke(cli, [group, sub, "--help"])
            assert result.exit_code == 0, result.output
    for name in ("logs", "status", "validate", "schema", "init", "completion"):
        assert runner.invoke(cli, [name, "--help"]).exit_code == 0


def test_validate_reports_ok_and_errors_with_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "pool.yaml"
    good.write_text("id: p\nnodes: 1\n")
    bad = tmp_path / "job.yaml"
    bad.write_text("id: j\npool: p\ntasks:\n  - comand: x\n")
    proc = run("validate", str(good), str(bad))
    assert proc.returncode == 2
    assert "ok: " in proc.stdout and "did you mean 'command'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_is_json_schema() -> None:
    for kind in ("pool", "job"):
        result = CliRunner().invoke(cli, ["schema", "--kind", kind])
        assert result.exit_code == 0
        assert json.loads(result.output)["type"] == "object"


def test_init_writes_templates_and_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    assert (tmp_path / "pool.yaml").exists() and (tmp_path / "jobs" / "hello.yaml").exists()
    again = run("init", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
    assert run("init", str(tmp_path), "--force").returncode == 0
    assert run("validate", str(tmp_path / "pool.yaml"), str(tmp_path / "jobs" / "hello.yaml")).returncode == 0


def test_job_naming_unknown_pool_exits_3_and_creates_nothing(tmp_path: Path, orch_home: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("id: j\npool: nowhere\ntasks: [{command: echo}]\n")
    proc = run("jobs", "add", str(job))
    assert proc.returncode == 3 and "pool 'nowhere'" in proc.stderr
    assert not (orch_home / "jobs").exists()


@pytest.mark.parametrize("args, code", [
    (["pool", "show", "ghost"], 3),
    (["jobs", "show", "ghost"], 3),
    (["logs"], 3),
    (["pool", "create", "missing.yaml"], 2),
    (["jobs", "add", "missing.yaml"], 2),
    (["pool", "resize", "p", "0"], 2),
    (["no-such-command"], 2),
])
def test_documented_exit_codes(tmp_path: Path, args: list[str], code: int) -> None:
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr


def test_options_have_env_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pool.yaml").write_text("id: from-env\n")
    monkeypatch.setenv("ORCH_CONFIG_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "pool.yaml")])
    assert result.exit_code == 0
    assert "ORCH_CONFIG_DIR" in CliRunner().invoke(cli, ["--help"]).output


def test_completion_script() -> None:
    result = CliRunner().invoke(cli, ["completion", "bash"])
    assert result.exit_code == 0 and "_ORCH_COMPLETE" in result.output


def test_readme_documents_every_exit_code() -> None:
    from orchestrator.errors import EXIT_CODES

    readme = (REPO / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme


def test_the_program_leaves_at_once_with_its_output_whole_and_its_exit_code(tmp_path: Path) -> None:
    """``entry`` skips the interpreter's teardown (os._exit): output must still arrive whole, and
    each exit path keep its code."""
    schema = run("schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["$defs"]  # the whole document, parsed
    missing = tmp_path / "absent.yaml"
    refused = run("validate", str(missing))
    assert refused.returncode == 2 and "absent.yaml" in refused.stderr
    usage = run("jobs", "show")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    # a reader that leaves early: no traceback, a failing exit code
    reader = subprocess.Popen([sys.executable, "-m", "orchestrator", "schema"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO)
    assert reader.stdout is not None
    reader.stdout.read(10)
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert b"Traceback" not in err
