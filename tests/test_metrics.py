"""Metric reporting (file and stdout) and incremental, garbage-tolerant reading."""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from orchestrator import report as package_report
from orchestrator.sweep.metrics import (
    METRICS_FILE_ENV,
    MetricRecord,
    MetricsReader,
    metric_history,
    parse_metric_line,
    parse_stdout_metrics,
    report,
)


@pytest.fixture
def metrics_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(METRICS_FILE_ENV, str(path))
    return path


def read_all(path: Path) -> list[MetricRecord]:
    reader = MetricsReader()
    records = reader.feed(path.read_bytes()) + reader.finish()
    assert reader.garbage_lines == 0
    return records


def test_report_appends_json_lines(metrics_file: Path) -> None:
    report(step=1, loss=0.5, phase="train")
    package_report(step=2, loss=np.float32(0.25), correct=np.int64(7))
    report(accuracy=0.9)
    lines = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, None]
    assert lines[0]["loss"] == 0.5 and lines[0]["phase"] == "train" and isinstance(lines[0]["time"], float)
    assert lines[1]["loss"] == 0.25 and lines[1]["correct"] == 7
    records = read_all(metrics_file)
    assert records[2].values == {"accuracy": 0.9} and records[2].step is None


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": float("nan")}, "only finite numbers"),
    ({"loss": float("inf")}, "only finite numbers"),
    ({"loss": np.float64("nan")}, "only finite numbers"),
    ({"ok": True}, "finite number or a string"),
    ({"loss": [1, 2]}, "finite number or a string"),
    ({"time": 3}, "reserved"),
    ({}, "at least one metric"),
])
def test_report_rejects_unusable_values(metrics_file: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report(step=1, **kwargs)
    assert not metrics_file.exists()


def test_report_rejects_a_non_integer_step(metrics_file: Path) -> None:
    with pytest.raises(ValueError, match="step must be an integer"):
        report(step=1.5, loss=1.0)  # type: ignore[arg-type]


def test_concurrent_reports_from_threads_never_interleave(metrics_file: Path) -> None:
    def worker(thread: int) -> None:
        for step in range(200):
            report(step=step, thread=thread, padding="x" * 500)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = read_all(metrics_file)
    assert len(records) == 1200
    for n in range(6):
        assert [r.step for r in records if r.values["thread"] == n] == list(range(200))


def test_without_a_metrics_file_lines_go_to_stdout(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(METRICS_FILE_ENV, raising=False)
    report(step=4, loss=0.125)
    out = capsys.readouterr().out
    assert out.startswith("ORCH_METRIC {")
    tagged = "[1,0]<stdout>:" + out + "plain log line\nORCH_METRIC not json\n"
    records = parse_stdout_metrics(tagged)
    assert len(records) == 1 and records[0].step == 4 and records[0].values == {"loss": 0.125}


def test_shell_helper_lines_are_read(metrics_file: Path) -> None:
    helper = """echo '{"val_accuracy": 0.9, "step": 3}' >> "$ORCH_METRICS_FILE" """
    subprocess.run(["/bin/sh", "-c", helper], check=True)
    assert read_all(metrics_file) == [MetricRecord(step=3, time=None, values={"val_accuracy": 0.9})]


def test_reader_handles_partial_lines_byte_by_byte() -> None:
    data = ('{"step": 1, "loss": 2.5, "note": "naïve ✓"}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo').encode()
    reader = MetricsReader()
    records: list[MetricRecord] = []
    for index in range(len(data)):
        records += reader.feed(data[index:index + 1])
    assert [r.step for r in records] == [1, 2] and records[0].values["note"] == "naïve ✓"
    assert reader.offset == len(data)
    assert reader.feed(b'ss": 0.5}\n') == [MetricRecord(step=3, time=None, values={"loss": 0.5})]
    assert reader.feed(b'{"step": 4, "loss": 0.25}') == []
    assert reader.finish() == [MetricRecord(step=4, time=None, values={"loss": 0.25})]
    assert reader.garbage_lines == 0


def test_reader_counts_garbage_and_keeps_going() -> None:
    reader = MetricsReader()
    chunk = b"\n".join([
        b"not json",
        b"[1, 2]",
        b'{"step": "three", "loss": 1}',
        b'{"step": 1}',
        b'{"loss": NaN}',
        b"\xff\xfe binary",
        b"",
        b'{"step": 5.0, "loss": 1e400, "acc": 0.5, "big": 123456789012345678901234567890}',
    ]) + b"\n"
    records = reader.feed(chunk)
    assert reader.garbage_lines == 6
    assert records == [MetricRecord(step=5, time=None, values={"acc": 0.5, "big": 123456789012345678901234567890})]


def test_reader_drops_an_endless_line() -> None:
    reader = MetricsReader()
    assert reader.feed(b"x" * (2 << 20)) == []
    assert reader.garbage_lines == 1
    assert reader.feed(b'tail\n{"loss": 1}\n') == [MetricRecord(step=None, time=None, values={"loss": 1})]


def test_parse_metric_line_reads_time() -> None:
    record = parse_metric_line('{"step": null, "time": 1700000000.5, "loss": 3}')
    assert record == MetricRecord(step=None, time=1700000000.5, values={"loss": 3})


def test_metric_history_numbers_reports_without_steps() -> None:
    records = [
        MetricRecord(step=None, time=None, values={"acc": 0.1}),
        MetricRecord(step=None, time=None, values={"lr": 0.5}),
        MetricRecord(step=None, time=None, values={"acc": 0.2}),
        MetricRecord(step=10, time=None, values={"acc": 0.3}),
        MetricRecord(step=None, time=None, values={"acc": "n/a"}),
        MetricRecord(step=None, time=None, values={"acc": 0.4}),
    ]
    assert metric_history(records, "acc") == [(1, 0.1), (2, 0.2), (10, 0.3), (11, 0.4)]
