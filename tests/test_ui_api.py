"""The dashboard's JSON API and log streams over an in-memory backend: what each endpoint shows,
server-side filtering and paging of a 20,000-task job, live log following, the sweep leaderboard
(the same ranking as `orch sweep results`), and no secret in what reaches the page. Fast: no engine."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from orchestrator import jobs, pools
from orchestrator.errors import redact
from orchestrator.model import AttemptInfo, JobRef, TaskInfo, TaskState
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from orchestrator.sweep import results as sweep_results
from orchestrator.ui import present
from orchestrator.ui.state import Dashboard
from tests.support.memory_backend import MemoryBackend
from tests.support.ui_server import Served, serve

SWEEP = {"id": "trial", "command": "train {{lr}}", "search_space": {"lr": {"choice": [0.0001, 0.01, 0.1, 1.0]}},
         "objective": {"metric": "acc", "goal": "maximize"}}


def metrics(*values: float, start: float = 1000.0) -> bytes:
    return b"".join(json.dumps({"step": i + 1, "acc": v, "time": start + i}).encode() + b"\n"
                    for i, v in enumerate(values))


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    backend = MemoryBackend()
    monkeypatch.setattr(pools, "load_backend", lambda name, config_dir=None: backend)
    monkeypatch.setattr(jobs, "load_backend", lambda name, config_dir=None: backend)
    pools.create_pool(PoolSpec.model_validate({"id": "mem", "nodes": 2, "cpus_per_node": 2}), backend=backend)
    return backend


def submit(backend: MemoryBackend, job_id: str, tasks: list[dict[str, object]]) -> JobRef:
    spec = JobSpec.model_validate({"id": job_id, "pool": "mem", "workdir": None, "tasks": tasks})
    submit_job(spec, config_dir=Path.cwd(), backend=backend)
    return JobRef("mem", job_id)


@pytest.fixture
def served(mem: MemoryBackend) -> Served:
    with serve(Dashboard(ttl=0.0)) as running:
        yield running


def test_overview_shows_pools_with_node_states_and_jobs_with_counts(mem: MemoryBackend, served: Served) -> None:
    ref = submit(mem, "plain", [{"id": "a", "command": "true"}, {"id": "b", "command": "false"}])
    mem.finish(ref, "a", TaskState.SUCCEEDED)
    data = served.get_json("/api/overview")
    (pool,) = data["pools"]
    assert (pool["id"], pool["state"], pool["node_states"], pool["free_slots"]) == ("mem", "ready", {"idle": 2}, 4)
    assert pool["spend"] is None and pool["burn_rate"] is None and pool["autostop"] is None  # not reported yet
    (job,) = data["jobs"]
    assert (job["id"], job["kind"], job["total"], job["task_counts"]) == ("plain", "job", 2,
                                                                           {"succeeded": 1, "pending": 1})
    assert data["unreachable"] == {}
    detail = served.get_json("/api/pools/mem")
    assert [n["id"] for n in detail["nodes"]] == ["n0", "n1"] and [j["id"] for j in detail["jobs"]] == ["plain"]


def test_a_20000_task_job_is_filtered_and_paged_by_the_server(mem: MemoryBackend, served: Served) -> None:
    ref = submit(mem, "big", [{"id": f"t{i:05d}", "command": "true"} for i in range(20_000)])
    for i in range(0, 20_000, 7):
        mem.jobs[ref].states[f"t{i:05d}"] = TaskState.FAILED
    start = time.perf_counter()
    page = served.get_json("/api/jobs/big/tasks?offset=0&limit=100")
    assert time.perf_counter() - start < 1.0
    assert (page["total"], page["matched"], len(page["tasks"])) == (20_000, 20_000, 100)
    assert page["tasks"][0]["id"] == "t00000" and page["tasks"][0]["attempts"] == []
    failed = served.get_json("/api/jobs/big/tasks?state=failed&offset=100&limit=50")
    assert failed["matched"] == len(range(0, 20_000, 7)) and failed["tasks"][0]["id"] == f"t{700:05d}"
    assert {t["state"] for t in failed["tasks"]} == {"failed"}
    found = served.get_json("/api/jobs/big/tasks?q=t1999")
    assert [t["id"] for t in found["tasks"]] == [f"t1999{i}" for i in range(10)]
    assert served.get_json("/api/jobs/big/tasks?limit=100000")["limit"] == 1000
    status, _, body = served.request("GET", "/api/jobs/big/tasks?state=exploded")
    assert status == 400 and b"unknown state" in body
    job = served.get_json("/api/jobs/big")
    assert job["total"] == 20_000 and "pending" in job["states"] and job["controller"] is None


def test_unknown_jobs_and_tasks_are_404_with_a_hint(mem: MemoryBackend, served: Served) -> None:
    submit(mem, "plain", [{"id": "a", "command": "true"}])
    for path in ("/api/jobs/nope", "/api/jobs/plain/tasks/zzz", "/api/jobs/plain/tasks/zzz/logs",
                 "/api/pools/nope", "/api/sweeps/nope"):
        status, _, body = served.request("GET", path)
        assert status == 404, path
        assert json.loads(body)["error"]


def test_a_log_follows_a_growing_file_until_the_task_ends(mem: MemoryBackend, served: Served) -> None:
    ref = submit(mem, "logs", [{"id": "a", "command": "true"}])
    record = mem.jobs[ref]
    record.states["a"] = TaskState.RUNNING

    def write() -> None:
        for i in range(5):
            time.sleep(0.15)
            record.files[("a", "stdout")] = "".join(f"[rank {r % 2}] line {r} é\n" for r in range(i + 1)).encode()
        record.states["a"] = TaskState.SUCCEEDED

    writer = threading.Thread(target=write)
    writer.start()
    events = served.events("/api/jobs/logs/tasks/a/logs?file=stdout")
    writer.join()
    texts = [data["text"] for kind, data in events if kind == "text"]
    assert len(texts) >= 2, "the text came in several events as it was written"
    assert "".join(texts) == "".join(f"[rank {r % 2}] line {r} é\n" for r in range(5))
    assert events[-1] == ("end", {"state": "succeeded", "offset": len(record.files[("a", "stdout")])})


def test_a_reconnecting_stream_resumes_at_its_last_event_id(mem: MemoryBackend, served: Served) -> None:
    ref = submit(mem, "logs", [{"id": "a", "command": "true"}])
    mem.finish(ref, "a", TaskState.SUCCEEDED, output=b"first\nsecond\n")
    status, _, body = served.request("GET", "/api/jobs/logs/tasks/a/logs", headers={"Last-Event-ID": "6"})
    assert status == 200 and b'"second\\n"' in body and b"first" not in body
    status, _, body = served.request("GET", "/api/jobs/logs/tasks/a/logs?file=/etc/passwd")
    assert status == 400 and b"unknown file" in body


def test_the_leaderboard_ranks_live_as_orch_sweep_results_does(mem: MemoryBackend, served: Served) -> None:
    ref = submit(mem, "sw", [SWEEP])
    record = mem.jobs[ref]
    record.states["trial-00000"] = TaskState.RUNNING
    record.files[("trial-00000", "metrics")] = metrics(0.5, 0.6)
    board = served.get_json("/api/sweeps/sw")
    assert [(r["trial"], r["acc"]) for r in board["rows"][:1]] == [("trial-00000", 0.6)]
    record.files[("trial-00001", "metrics")] = metrics(0.7, 0.9, start=1003)
    record.states["trial-00001"] = TaskState.SUCCEEDED
    record.files[("trial-00002", "metrics")] = metrics(0.2, start=1002)
    record.states["trial-00002"] = TaskState.STOPPED
    board = served.get_json("/api/sweeps/sw")
    assert [r["trial"] for r in board["rows"]] == ["trial-00001", "trial-00000", "trial-00002", "trial-00003"]
    expected = sweep_results.rows(*_ranked(mem, ref))
    assert board["rows"] == json.loads(json.dumps(expected)), "one data layer: the CLI's rows"
    assert (board["metric"], board["goal"]) == ("acc", "maximize")
    (lr,) = board["params"]
    assert lr["name"] == "lr" and lr["scale"] == "log" and len(lr["points"]) == 3
    stopped = [c for c in board["curves"] if c["stopped"]]
    assert [c["trial"] for c in stopped] == ["trial-00002"] and board["curves"][0]["best"]
    assert [p["value"] for p in board["best_over_time"]] == [0.5, 0.6, 0.7, 0.9]
    assert board["spend"] is None


def _ranked(backend: MemoryBackend, ref: JobRef) -> tuple[list[sweep_results.TrialResult], str | None]:
    objective = sweep_results.Objective(metric="acc", goal="maximize")
    results, metric = sweep_results.collect(backend, ref, objective)
    return sweep_results.rank(results, objective.goal), metric


def test_metrics_are_read_only_where_they_grew(mem: MemoryBackend) -> None:
    ref = submit(mem, "sw", [SWEEP])
    reads: list[tuple[str, int]] = []
    original = mem.read_file

    def counted(job: JobRef, task_id: str, name: str, *, offset: int = 0):  # type: ignore[no-untyped-def]
        reads.append((task_id, offset))
        return original(job, task_id, name, offset=offset)

    mem.read_file = counted  # type: ignore[method-assign]
    for task_id in mem.jobs[ref].tasks:
        mem.finish(ref, task_id, TaskState.SUCCEEDED)
        mem.jobs[ref].files[(task_id, "metrics")] = metrics(0.1)
    dashboard = Dashboard(ttl=0.0)
    dashboard.sweep("sw")
    first = len(reads)
    dashboard.sweep("sw")
    assert first == 4 and len(reads) == first, "ended trials are read once"


def test_what_reaches_the_page_has_no_secrets() -> None:
    url = "https://acct.blob.core.windows.net/c/x?sv=2024&se=2030&sp=r&sig=abc%2Fdef%3D"
    text = f"download of {url} failed; DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0a2V5;Bearer eyJhbGciOiJI.x.y"
    cleaned = redact(text)
    assert cleaned is not None
    assert "abc%2Fdef" not in cleaned and "c2VjcmV0a2V5" not in cleaned and "eyJhbGciOiJI" not in cleaned
    assert "sig=REDACTED" in cleaned and "se=2030" in cleaned
    earlier = AttemptInfo(number=1, state="preempted", error=text, node_id="n0", ended_at=9.0)
    task = present.task(TaskInfo(id="t", job_id="j", state=TaskState.FAILED, error=text, started_at=10.0,
                                 ended_at=12.5, exit_code=3, node_id="n1", retries=2, attempts=(earlier,)))
    assert "abc%2Fdef" not in json.dumps(task)
    assert (task["seconds"], task["retries"], task["exit_code"]) == (2.5, 2, 3)
    assert [(a["number"], a["state"], a["node_id"], a["ended_at"]) for a in task["attempts"]] == [
        (1, "preempted", "n0", 9.0)]
    assert "sig=REDACTED" in task["attempts"][0]["reason"]


def test_pages_are_shells_with_escaped_ids_and_strict_headers(mem: MemoryBackend, served: Served) -> None:
    submit(mem, "plain", [{"id": "a", "command": "true"}])
    for path in ("/", "/pools/mem", "/jobs/plain", "/jobs/plain/tasks/a", "/sweeps/plain"):
        status, headers, body = served.request("GET", path)
        assert status == 200 and headers["content-type"].startswith("text/html"), path
        assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
        assert b"<script>" not in body and served.access.token.encode() not in body
    status, _, body = served.request("GET", "/jobs/%3Cimg%20src%3Dx%3E")
    assert status == 200 and b"<img" not in body and b"&lt;img src=x&gt;" in body
    status, headers, body = served.request("GET", "/static/charts.js")
    assert status == 200 and b"scatter" in body


def test_slow_answers_are_kept_longer_than_the_ttl() -> None:
    now = [0.0]
    dashboard = Dashboard(ttl=1.0, clock=lambda: now[0])
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        now[0] += 2.0  # the listing took 2 s
        return len(calls)

    assert dashboard.cached(("k",), slow) == 1
    now[0] += 5.0
    assert dashboard.cached(("k",), slow) == 1, "kept 5 × 2 s after it arrived"
    now[0] += 6.0
    assert dashboard.cached(("k",), slow) == 2


def test_best_so_far_counts_untimed_reports_when_their_trial_ended() -> None:
    from orchestrator.sweep.metrics import MetricRecord
    from orchestrator.sweep.results import TrialResult
    from orchestrator.ui.sweep_view import best_over_time

    def trial(task_id: str, value: float, ended: float | None) -> TrialResult:
        return TrialResult(task=TaskInfo(id=task_id, job_id="s", state=TaskState.SUCCEEDED, ended_at=ended), value=value)

    reports = {"a": [MetricRecord(step=1, time=None, values={"m": 0.2}), MetricRecord(step=2, time=None, values={"m": 0.4})],
               "b": [MetricRecord(step=1, time=105.0, values={"m": 0.3})], "c": []}
    ranked = [trial("a", 0.4, 110.0), trial("b", 0.3, 106.0), trial("c", 0.9, None)]
    assert best_over_time(ranked, reports, "m", "maximize", 100.0) == [
        {"t": 5.0, "value": 0.3, "trial": "b"}, {"t": 10.0, "value": 0.4, "trial": "a"}]
    assert best_over_time(ranked, reports, "m", "minimize", 100.0)[-1]["value"] == 0.3
    assert best_over_time(ranked, reports, None, "maximize", 100.0) == []


def test_a_pool_whose_jobs_cannot_be_listed_does_not_hide_the_others(mem: MemoryBackend, served: Served,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.errors import BackendUnavailableError

    submit(mem, "plain", [{"id": "a", "command": "true"}])
    pools.create_pool(PoolSpec.model_validate({"id": "gone", "nodes": 1}), backend=mem)
    listing = mem.list_jobs

    def flaky(pool_id: str):  # type: ignore[no-untyped-def]
        if pool_id == "gone":
            raise BackendUnavailableError("the cluster at 10.0.0.9:6379 does not answer; sig=secret123")
        return listing(pool_id)

    monkeypatch.setattr(mem, "list_jobs", flaky)
    data = served.get_json("/api/overview")
    assert [j["id"] for j in data["jobs"]] == ["plain"] and {p["id"] for p in data["pools"]} == {"mem", "gone"}
    assert "does not answer" in data["unreachable"]["gone"] and "secret123" not in data["unreachable"]["gone"]
