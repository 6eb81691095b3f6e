"""``orch logs``: files are streamed in the backend's chunks with constant memory; stdout, stderr
and metrics are text, other files come back byte for byte; all-task output is prefixed per line.
The slow tests run on the real local Ray pool (binary outputs, Ctrl-C while following a job)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import follow, jobs
from orchestrator.cli.root import cli
from orchestrator.model import FileChunk, JobRef, TaskInfo, TaskState

REF = JobRef("p", "j")


class FileBackend:
    """Serves task files from memory, or made up on the fly (``virtual``), at most ``limit`` bytes a read."""

    def __init__(self, files: dict[tuple[str, str], bytes], limit: int = 7,
                 virtual: dict[tuple[str, str], int] | None = None) -> None:
        self.files, self.limit, self.virtual, self.reads = files, limit, virtual or {}, 0

    def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        self.reads += 1
        if (task_id, name) in self.virtual:
            size = self.virtual[(task_id, name)]
            line = b"a line of output from a busy task \xc3\xa9\n"
            count = max(0, min(self.limit, size - offset)) // len(line)
            return FileChunk(line * count if offset < size else b"", size)
        data = self.files.get((task_id, name))
        return None if data is None else FileChunk(data[offset:offset + self.limit], len(data))

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        names = sorted({task for task, _ in self.files} | {task for task, _ in self.virtual})
        return [TaskInfo(id=name, job_id=job.job_id, state=TaskState.SUCCEEDED) for name in names]

    def get_job(self, job: JobRef) -> None:
        return None


def run_logs(backend: FileBackend, monkeypatch: pytest.MonkeyPatch, *args: str) -> bytes:
    monkeypatch.setattr(jobs, "locate", lambda job_id, config_dir=None: jobs.JobHandle(backend, REF))  # type: ignore[arg-type]
    result = CliRunner().invoke(cli, ["logs", "j", *args])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def test_a_binary_file_comes_back_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = random.Random(3).randbytes(100_000)
    backend = FileBackend({("t", "outputs/model.pt"): blob}, limit=4096)
    assert run_logs(backend, monkeypatch, "t", "--file", "outputs/model.pt") == blob
    assert backend.reads == 25  # one read per chunk, no more


def test_logs_are_text_and_characters_split_across_chunks_survive(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "épreuve ✓ 日本\n" * 5 + "bad byte: "
    backend = FileBackend({("t", "stdout"): text.encode() + b"\xff\n"}, limit=5)
    assert run_logs(backend, monkeypatch, "t").decode() == text + "\ufffd\n"


def test_every_task_is_prefixed_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FileBackend({("a", "stdout"): b"one\ntwo\n\nthree", ("b", "stdout"): "é\n".encode(),
                           ("c", "stderr"): b"not stdout\n"}, limit=3)
    assert run_logs(backend, monkeypatch).decode() == "[a] one\n[a] two\n[a] \n[a] three\n[b] é\n"


def test_a_missing_file_of_one_task_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "locate", lambda job_id, config_dir=None: jobs.JobHandle(FileBackend({}), REF))  # type: ignore[arg-type]
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["logs", "j", "t"])
    assert exited.value.code == 3


@pytest.mark.parametrize("prefix", ["", "[task] "])
def test_streaming_a_large_file_takes_constant_memory(prefix: str) -> None:
    size = 200 * 2**20
    backend = FileBackend({}, limit=4 * 2**20, virtual={("t", "stdout"): size})
    tracemalloc.start()
    chunks = follow.file_chunks(backend, REF, "t", "stdout")  # type: ignore[arg-type]
    assert chunks is not None
    texts = follow.decoded(chunks)
    total = sum(len(block) for block in (follow.prefixed(prefix, texts) if prefix else texts))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total > size * 0.9
    assert peak < 40 * 2**20, peak  # a few chunks in flight, not the 200 MiB file


def test_prefixed_handles_lines_across_blocks_and_a_missing_last_newline() -> None:
    blocks = ["ab", "c\nd", "e\n", "\n", "f"]
    assert "".join(follow.prefixed("> ", blocks)) == "> abc\n> de\n> \n> f\n"
    assert "".join(follow.prefixed("> ", [])) == ""


def test_reading_stops_at_the_size_seen_first() -> None:
    class Growing(FileBackend):
        def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
            self.files[(task_id, name)] += b"more\n"  # a task still writing
            return super().read_file(job, task_id, name, offset=offset)

    backend = Growing({("t", "stdout"): b"0123456789"}, limit=4)
    chunks = follow.file_chunks(backend, REF, "t", "stdout")  # type: ignore[arg-type]
    assert chunks is not None and len(b"".join(chunks)) >= 15  # what was there at the first read (10 + 5)


# --- on the real local Ray pool -------------------------------------------------------------

def orch_env(pool_home: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}


@pytest.mark.slow
def test_output_file_round_trips_through_orch_logs(pool_home: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "bin.yaml"
    spec.write_text("id: binout\npool: testpool\nworkdir: null\ntasks:\n  - id: make\n    command: >-\n"
                    "      python -c \"import random; open('x.bin', 'wb').write(random.Random(7).randbytes(100000))\"\n"
                    "    output_files: [x.bin]\n")
    env = orch_env(pool_home)
    added = subprocess.run([sys.executable, "-m", "orchestrator", "jobs", "add", str(spec), "--tail"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert added.returncode == 0, added.stderr
    expected = random.Random(7).randbytes(100_000)
    for extra in ([], ["--tail"]):
        got = tmp_path / "got.bin"
        with got.open("wb") as out:
            proc = subprocess.run([sys.executable, "-m", "orchestrator", "logs", "binout", "make", "--file",
                                   "outputs/x.bin", *extra], env=env, stdout=out, stderr=subprocess.PIPE, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert got.read_bytes() == expected


@pytest.mark.slow
def test_ctrl_c_while_following_a_job_exits_130_and_says_how_to_resume(pool_home: dict[str, str],
                                                                       tmp_path: Path) -> None:
    spec = tmp_path / "sleepy.yaml"
    spec.write_text("id: sleepy\npool: testpool\nworkdir: null\ntasks:\n  - id: nap\n    command: sleep 60\n")
    env = orch_env(pool_home)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "jobs", "add", str(spec), "--tail"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 120
        while b"task(s) submitted" not in seen and time.monotonic() < deadline:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
        assert b"task(s) submitted" in seen, seen
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run([sys.executable, "-m", "orchestrator", "jobs", "cancel", "sleepy", "-y"], env=env,
                       capture_output=True, timeout=120)
    err = (seen + rest).decode()
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "`orch logs sleepy --tail` follows it again" in err
    assert "Traceback" not in err
