"""The command line under hostile values: ids are checked before any path is built from them (also
in the records, as a second line of defence), task file names stay inside the task, Ctrl-C exits
130 saying how to resume, and a declined confirmation exits 10."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.records import job_index, pool_records
from orchestrator.records.home import pool_state_dir
from orchestrator.records.job_index import JobEntry
from orchestrator.records.pool_records import PoolRecord

BAD_IDS = ["../jobs/j9", "../pools/probe", "x" * 300, "a b", "_lead", "ok\n", "a/b", ""]
COMMANDS = [
    ["pool", "show", "{}"], ["pool", "delete", "{}", "-y"], ["pool", "resize", "{}", "2"],
    ["jobs", "show", "{}"], ["jobs", "cancel", "{}", "-y"], ["jobs", "delete", "{}", "-y"],
    ["jobs", "list", "--pool", "{}"], ["logs", "{}"], ["logs", "j", "{}"],
    ["sweep", "status", "{}"], ["sweep", "results", "{}"],
]


def orch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(w for w in c if w != "{}"))
def test_every_id_argument_is_checked_before_use(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    for bad in BAD_IDS:
        with pytest.raises(SystemExit) as exited:
            main([bad if word == "{}" else word for word in command])
        err = capsys.readouterr().err
        assert exited.value.code == 2, (bad, err)
        assert "is not a valid" in err and len(err) < 1000, err


@pytest.mark.parametrize("args", [["pool", "show", "../jobs/j9"], ["pool", "show", "../pools/probe"],
                                  ["jobs", "show", "j" * 300], ["logs", "j" * 300], ["pool", "delete", "p" * 300]])
def test_the_reported_cases_exit_2_without_a_traceback(args: list[str], tmp_path: Path) -> None:
    proc = orch(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "is not a valid" in proc.stderr


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "outputs/../../x", "", "a\0b", "x" * 2000])
def test_task_file_names_stay_inside_the_task(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["logs", "j", "t", "--file", name])
    assert exited.value.code == 2 and "is not a file of a task" in capsys.readouterr().err


def test_records_refuse_ids_that_would_build_paths(orch_home: Path) -> None:
    for call in (lambda: pool_records.load("../jobs/j9"), lambda: pool_records.remove("../x"),
                 lambda: pool_records.save(PoolRecord(id="../x", backend="ray", spec={}, created_at=0.0)),
                 lambda: job_index.lookup("../pools/probe"), lambda: job_index.forget("x" * 300),
                 lambda: job_index.record(JobEntry(id="j", pool_id="../p", backend="ray")),
                 lambda: pool_state_dir("a/b")):
        with pytest.raises(SpecError, match="is not a valid"):
            call()
    assert not orch_home.exists() or not any(orch_home.rglob("*x*"))


def prompt_for_pool_delete(orch_home: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``orch pool delete p1`` of a recorded (not running) pool, stopped at its confirmation prompt."""
    pool_records.save(PoolRecord(id="p1", backend="ray", spec={"id": "p1"}, created_at=time.time(), state="ready"))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "pool", "delete", "p1"], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 60
    while b"Delete pool" not in seen and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 1024)
        if not chunk:
            break
        seen += chunk
    assert b"Delete pool 'p1'" in seen, seen
    return proc


def test_ctrl_c_at_a_prompt_exits_130_and_says_how_to_resume(orch_home: Path, tmp_path: Path) -> None:
    proc = prompt_for_pool_delete(orch_home, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"interrupted (Ctrl-C)" in err and b"run `orch pool delete p1` again" in err
    assert b"Traceback" not in err and pool_records.load("p1") is not None


@pytest.mark.parametrize("answer", [b"n\n", b""])
def test_declined_confirmation_exits_10_and_changes_nothing(orch_home: Path, tmp_path: Path, answer: bytes) -> None:
    proc = prompt_for_pool_delete(orch_home, tmp_path)
    _, err = proc.communicate(answer, timeout=30)
    assert proc.returncode == 10, err
    assert b"Nothing was changed" in err and b"Traceback" not in err
    assert pool_records.load("p1") is not None


def test_errors_never_print_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's one error handler redacts whatever a message carries (a last line of defence)."""
    from orchestrator.errors import BackendError, redact

    secret = "https://acct.blob.core.windows.net/c/b?sv=2024&sig=abc%2Fdef&se=x AccountKey=k3y== Bearer eyJhbGciOiJIUzI1NiJ9.x"
    assert "abc" not in redact(secret) and "k3y" not in redact(secret) and "eyJ" not in redact(secret)  # type: ignore[operator]
    from orchestrator import cli

    def boom(*_: object, **__: object) -> None:
        raise BackendError(f"upload failed: {secret}")

    import orchestrator.cli.root as root
    original = root.cli.main
    root.cli.main = boom  # type: ignore[method-assign]
    try:
        with pytest.raises(SystemExit):
            cli.main(["status"])
    finally:
        root.cli.main = original  # type: ignore[method-assign]
    err = capsys.readouterr().err
    assert "REDACTED" in err and "abc%2Fdef" not in err and "k3y" not in err and "eyJhbGciOiJIUzI1NiJ9" not in err
