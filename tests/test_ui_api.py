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
from orchestrator.cost import report
from orchestrator.errors import redact
from orchestrator.model import AttemptInfo, JobRef, TaskInfo, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from orchestrator.sweep import results as sweep_results
from orchestrator.ui import present
from orchestrator.ui.cost_view import NO_PRICE
from orchestrator.ui.state import Dashboard
from tests.support.ledger_backend import LedgerBackend, PoolOverride, span
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
    monkeypatch.setattr(report, "load_backend", lambda name, config_dir=None: backend)
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
    assert pool["spend"] is None and pool["burn_rate"] is None  # no ledger: no figure, and the reason
    assert pool["cost_note"].endswith("backend keeps no cost ledger") and pool["autostop"]["state"] == "never"
    (job,) = data["jobs"]
    assert job["spend"] is None and job["cost_note"] == pool["cost_note"]
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
    assert board["spend"]["total"] is None and board["spend"]["note"].endswith("backend keeps no cost ledger")
    assert "cost_usd" not in board["rows"][0]


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


# -- money, over an in-memory ledger (the layer `orch status`, `orch cost` and `orch sweep results` use) --
@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> LedgerBackend:
    """A pool priced at 3,600 USD per node hour (1 USD per node second) with a ledger."""
    backend = LedgerBackend()
    for module in (pools, jobs, report):
        monkeypatch.setattr(module, "load_backend", lambda name, config_dir=None: backend)
    return backend


def ledger_pool(backend: LedgerBackend, **extra: object) -> float:
    """Create pool ``mem`` (2 nodes) made 200 s ago; returns now."""
    pools.create_pool(PoolSpec.model_validate({"id": "mem", "nodes": 2, "cpus_per_node": 2, **extra}), backend=backend)
    now = time.time()
    record = pool_records.require("mem")
    record.created_at = now - 200
    pool_records.save(record)
    return now


def test_pools_and_jobs_show_spend_burn_rate_budgets_and_autostop(ledger: LedgerBackend) -> None:
    now = ledger_pool(ledger, price_per_node_hour=3600, max_spend=9, idle_timeout="30m")
    ref = submit(ledger, "plain", [{"id": "a", "command": "true"}, {"id": "b", "command": "true"}])
    ledger.spans["mem"] = [span(now - 300, now - 10, price=3600, pool="mem"),  # before the pool: not counted
                           span(now - 10, now - 6, price=3600, pool="mem"),
                           span(now - 6, now + 1, job="plain", task="a", share=0.5, price=3600, pool="mem")]
    ledger.overrides["mem"] = PoolOverride(stops_at=now + 720)
    with serve(Dashboard(ttl=0.0)) as served:
        data = served.get_json("/api/overview")
        (pool,) = data["pools"]
        assert pool["spend"] == pytest.approx(190 + 4 + 3.5) and pool["burn_rate"] == pytest.approx(1800)
        assert pool["cost_note"] is None and pool["price_per_node_hour"] == 3600
        assert [(b["level"], b["what"]) for b in pool["budgets"]] == [("reached", "pool mem (max_spend)")]
        stop = pool["autostop"]
        assert (stop["state"], stop["stops_at"], stop["in_text"]) == ("scheduled", now + 720, "12m")
        assert stop["idle_timeout"] == 1800 and not stop["autodelete"]
        (job,) = data["jobs"]
        assert job["spend"] == pytest.approx(3.5) and served.get_json("/api/jobs/plain")["spend"] == pytest.approx(3.5)
        page = served.get_json("/api/jobs/plain/tasks")
        assert [(t["id"], t["cost"]) for t in page["tasks"]] == [("a", pytest.approx(3.5)), ("b", 0.0)]
        assert served.get_json("/api/jobs/plain/tasks/a")["cost"] == pytest.approx(3.5)
        ledger.spans["mem"][0:2] = []
        assert served.get_json("/api/pools/mem")["budgets"][0]["level"] == "ok"
        ledger.overrides["mem"] = PoolOverride(state="stopped")
        assert served.get_json("/api/pools/mem")["autostop"]["state"] == "stopped"
    ledger.finish(ref, "a", TaskState.SUCCEEDED)


def test_autostop_says_never_armed_stopped_or_deleted() -> None:
    from orchestrator.model import PoolInfo
    from orchestrator.ui.cost_view import autostop

    plain = PoolSpec.model_validate({"id": "p"})
    timed = PoolSpec.model_validate({"id": "p", "idle_timeout": "30m", "autodelete": True})
    ready = PoolInfo(id="p", backend="b", state="ready")
    assert autostop(ready, plain, 0)["text"] == "never (no idle_timeout)"
    assert autostop(ready, timed, 0)["text"] == "deletes itself after 30m without work"
    assert autostop(PoolInfo(id="p", backend="b", state="deleted"), timed, 0)["state"] == "deleted"
    assert autostop(PoolInfo(id="p", backend="b", state="idle", stops_at=100.0), timed, 40)["in_text"] == "1m"


def test_a_pool_without_a_price_says_so_instead_of_zero(ledger: LedgerBackend) -> None:
    now = ledger_pool(ledger)
    submit(ledger, "sw", [SWEEP])
    ledger.spans["mem"] = [span(now - 6, now + 1, job="sw", task="trial-00000", price=0.0, pool="mem")]
    with serve(Dashboard(ttl=0.0)) as served:
        (pool,) = served.get_json("/api/pools")
        assert (pool["spend"], pool["burn_rate"], pool["cost_note"]) == (None, None, NO_PRICE)
        assert pool["node_hours"] == pytest.approx(7 / 3600)
        job = served.get_json("/api/jobs/sw")
        assert (job["spend"], job["cost_note"]) == (None, NO_PRICE)
        assert {t["cost"] for t in served.get_json("/api/jobs/sw/tasks")["tasks"]} == {None}
        board = served.get_json("/api/sweeps/sw")
        assert board["spend"]["note"] == NO_PRICE and board["spend"]["best_over_spend"] == []


def test_trials_cost_and_the_best_over_spend(ledger: LedgerBackend) -> None:
    now = ledger_pool(ledger, price_per_node_hour=3600)
    ref = submit(ledger, "sw", [SWEEP])
    ledger.end(ref, "trial-00000", TaskState.SUCCEEDED, now - 90, usd=2, metrics=metrics(0.5))
    ledger.end(ref, "trial-00001", TaskState.SUCCEEDED, now - 80, usd=3, metrics=metrics(0.9))
    ledger.end(ref, "trial-00002", TaskState.STOPPED, now - 70, usd=1, metrics=metrics(0.7))
    with serve(Dashboard(ttl=0.0)) as served:
        board = served.get_json("/api/sweeps/sw")
    assert [(r["trial"], r["cost_usd"]) for r in board["rows"][:3]] == [
        ("trial-00001", pytest.approx(3)), ("trial-00002", pytest.approx(1)), ("trial-00000", pytest.approx(2))]
    ranked, metric = _ranked(ledger, ref)
    costs = report.sweep_cost(ledger, ref, ranked[0].task)
    assert costs is not None and board["rows"] == json.loads(json.dumps(sweep_results.rows(ranked, metric, costs.trials)))
    spend = board["spend"]
    assert (spend["total"], spend["best_trial"], spend["note"]) == (pytest.approx(6), "trial-00001", None)
    assert spend["best_after"] == pytest.approx(5), "spent when the best trial ended, as `orch sweep results` says"
    assert spend["best_over_spend"] == [{"usd": 2.0, "value": 0.5, "trial": "trial-00000"},
                                        {"usd": 5.0, "value": 0.9, "trial": "trial-00001"}]


def test_a_20000_task_job_with_costs_reads_the_ledger_once_per_refresh(ledger: LedgerBackend) -> None:
    now = ledger_pool(ledger, price_per_node_hour=3600)
    ref = submit(ledger, "big", [{"id": f"t{i:05d}", "command": "true"} for i in range(20_000)])
    for i in range(20_000):
        ledger.end(ref, f"t{i:05d}", TaskState.SUCCEEDED, now - 100 + i / 1000, usd=0.5)
    with serve(Dashboard(ttl=5.0)) as served:
        start = time.perf_counter()
        page = served.get_json("/api/jobs/big/tasks?offset=19900&limit=100")
        assert time.perf_counter() - start < 1.0
        assert [t["cost"] for t in page["tasks"]] == [pytest.approx(0.5)] * 100
        served.get_json("/api/jobs/big/tasks?offset=0&limit=100")
        served.get_json("/api/jobs/big")
        served.get_json("/api/overview")
        assert served.get_json("/api/jobs")[0]["spend"] == pytest.approx(10_000)
    assert ledger.usage_calls == 1, "one ledger read and one summary for every page within the ttl"
