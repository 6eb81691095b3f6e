"""Cost in the core, fast: spend arithmetic over ledger spans, budget checks and levels, and the
reports ``orch cost``, ``orch status`` and ``orch sweep results`` show, over an in-memory ledger."""
from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from orchestrator import pools
from orchestrator.backend import Capability
from orchestrator.cli.root import cli
from orchestrator.cost import budgets, report
from orchestrator.cost.spend import clip, spent_until, summarize
from orchestrator.errors import SpecError, UnsupportedError
from orchestrator.model import JobRef, TaskInfo, TaskState
from orchestrator.plan import make_plan
from orchestrator.records import job_index, pool_records
from orchestrator.records.job_index import JobEntry
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from tests.support.ledger_backend import LedgerBackend, span
from tests.support.memory_backend import MemoryBackend

HOUR = 3600.0


# -- spend ---------------------------------------------------------------------------------------
def test_spend_sums_per_pool_job_and_task_with_idle_apart() -> None:
    spans = [span(0, HOUR, job="j", task="a", share=0.5), span(0, HOUR, share=0.5),
             span(HOUR, 2 * HOUR, job="j", task="b"), span(0, 2 * HOUR, job="k", task="c", node="n1", price=1.0)]
    spend = summarize("p", spans)
    assert spend.total.usd == pytest.approx(1 + 1 + 2 + 2) and spend.total.node_hours == pytest.approx(4)
    assert spend.idle.usd == pytest.approx(1) and spend.idle.node_hours == pytest.approx(0.5)
    assert spend.job("j").usd == pytest.approx(3) and spend.task("j", "a").node_hours == pytest.approx(0.5)
    assert spend.job("k").usd == pytest.approx(2) and spend.job("nobody").usd == 0
    assert (spend.first, spend.last) == (0, 2 * HOUR)


def test_since_keeps_only_the_part_after_it_and_burn_counts_what_reaches_the_question() -> None:
    spans = [span(0, 2 * HOUR, job="j", task="a"), span(0, HOUR, node="n1"), span(HOUR, 3 * HOUR, node="n1")]
    spend = summarize("p", spans, since=HOUR, asked=3 * HOUR)
    assert spend.total.node_hours == pytest.approx(3)
    assert spend.burn_per_hour == pytest.approx(2.0), "only the span still accruing at 3h burns"
    assert [s.start for s in clip(spans, since=HOUR)] == [HOUR, HOUR]
    assert spent_until(spans, HOUR) == pytest.approx(4.0) and spent_until(spans, HOUR, job_id="j") == pytest.approx(2)


def test_hours_at_no_price_are_counted_apart() -> None:
    spend = summarize("p", [span(0, HOUR, price=0.0), span(0, HOUR, node="n1", job="j", task="t")])
    assert spend.total.unpriced_hours == pytest.approx(1) and spend.total.usd == pytest.approx(2)


# -- budgets -------------------------------------------------------------------------------------
def sweep_job(job_limits: dict[str, object] | None = None, **limits: object) -> JobSpec:
    return JobSpec.model_validate({"id": "sw", "pool": "mem", "workdir": None, "limits": job_limits, "tasks": [
        {"id": "plain", "command": "true"},
        {"id": "trial", "command": "echo {{x}}", "search_space": {"x": {"choice": [1, 2, 3]}},
         "limits": limits or None}]})


def test_budgets_travel_to_the_backend_and_the_index() -> None:
    job = sweep_job({"budget": 10}, budget="2.5 USD")
    pool = PoolSpec.model_validate({"id": "mem", "nodes": 1, "price_per_node_hour": 1})
    plan = make_plan(job, pool, base_dir=pool_records.pools_dir())
    assert plan.job.budget == 10 and dict(plan.job.sweep_budgets) == {"trial": 2.5}
    assert plan.index.budget == 10 and plan.index.sweep_budgets == {"trial": 2.5}


@pytest.mark.parametrize(("limits", "where"), [({"budget": 0}, "limits.budget")])
def test_a_budget_of_zero_is_refused_where_it_is_written(limits: dict[str, object], where: str) -> None:
    with pytest.raises(SpecError, match="no trial could start") as caught:
        budgets.check_amounts(sweep_job(**limits))
    assert caught.value.where is not None and caught.value.where.key_path == f"tasks[1].{where}"


def test_budgets_need_a_ledger_and_a_price_before_anything_is_created() -> None:
    job = sweep_job(budget=5)
    unpriced = PoolSpec.model_validate({"id": "mem", "nodes": 1})
    with pytest.raises(UnsupportedError, match="keeps no cost ledger"):
        budgets.check_job(job, unpriced, MemoryBackend())
    ledger = MemoryBackend(frozenset({Capability.COST_LEDGER}))
    with pytest.raises(SpecError, match="has no price") as caught:
        budgets.check_job(job, unpriced, ledger)
    assert caught.value.where is not None and caught.value.where.key_path == "tasks[1].limits.budget"
    budgets.check_job(job, unpriced.model_copy(update={"price_per_node_hour": 1.0}), ledger)
    with pytest.raises(SpecError, match="max_spend is 0"):
        budgets.check_pool(PoolSpec.model_validate({"id": "mem", "max_spend": 0, "price_per_node_hour": 1}), ledger)


def test_submission_checks_budgets_before_calling_the_backend() -> None:
    memory = MemoryBackend()
    pools.create_pool(PoolSpec.model_validate({"id": "mem", "nodes": 1}), backend=memory)
    memory.calls.clear()
    with pytest.raises(UnsupportedError):
        submit_job(sweep_job(budget=5), config_dir=pool_records.pools_dir(), backend=memory)
    assert memory.calls == [] and job_index.lookup("sw") is None


def test_a_pool_with_max_spend_needs_a_price_before_it_is_created() -> None:
    memory = MemoryBackend(frozenset({Capability.COST_LEDGER}))
    with pytest.raises(SpecError, match="has no price"):
        pools.create_pool(PoolSpec.model_validate({"id": "mem", "max_spend": "100 USD"}), backend=memory)
    assert memory.calls == [] and pool_records.load("mem") is None


def test_trials_belong_to_their_sweep_and_limits_warn_at_80_percent() -> None:
    assert budgets.sweep_of("trial-00003", ["trial", "other"]) == "trial"
    assert budgets.sweep_of("trial", ["trial"]) is None and budgets.sweep_of("x-00001", ["trial"]) is None
    spend = summarize("p", [span(0, HOUR, job="sw", task="trial-00000"), span(0, HOUR, job="sw", task="plain",
                                                                             node="n1")])
    limits = budgets.job_limits("sw", spend, 5.0, {"trial": 2.2})
    assert [(limit.spent, limit.level) for limit in limits] == [(pytest.approx(4.0), "warn"), (pytest.approx(2.0), "warn")]
    assert "2.00 USD of 2.20 USD (91%)" in limits[1].text()
    assert budgets.Limit("x", 1.0, 1.0).level == "reached" and budgets.Limit("x", 1.0, 0.5).level == "ok"


# -- reports over an in-memory ledger ------------------------------------------------------------
@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> LedgerBackend:
    backend = LedgerBackend()
    monkeypatch.setattr(report, "load_backend", lambda name, config_dir=None: backend)
    now = time.time()
    for pool_id in ("live", "gone"):
        pools.create_pool(PoolSpec.model_validate({"id": pool_id, "price_per_node_hour": 3600, "max_spend": 10}),
                          backend=backend)
        record = pool_records.require(pool_id)
        record.created_at = now - 60
        pool_records.save(record)
    backend.spans["live"] = [span(now - 6, now + 1, job="sw", task="trial-00000", price=3600, pool="live"),
                             span(now - 10, now - 6, price=3600, pool="live")]
    backend.spans["gone"] = [span(now - 30, now - 20, job="old", task="t", price=3600, pool="gone")]
    pools.delete_pool("gone", backend=backend)
    job_index.record(JobEntry(id="sw", pool_id="live", backend="memory", kind="sweep", sweep_budgets={"trial": 7.5}))
    return backend


def test_cost_report_includes_deleted_pools_and_filters_by_job(ledger: LedgerBackend) -> None:
    every = report.cost_report()
    assert {(p.pool_id, p.deleted) for p in every.pools} == {("live", False), ("gone", True)}
    gone = next(p for p in every.pools if p.pool_id == "gone")
    assert gone.spend is not None and gone.spend.job("old").usd == pytest.approx(10)
    only = report.cost_report(job_id="sw")
    assert [p.pool_id for p in only.pools] == ["live"]
    assert [p.pool_id for p in report.cost_report(since=time.time() - 15).pools] == ["live", "gone"]


def test_status_warns_at_80_percent_of_a_budget_and_of_max_spend(ledger: LedgerBackend) -> None:
    status = report.pool_status("live")
    assert status.spend is not None and status.spend.burn_per_hour == pytest.approx(3600)
    texts = status.warnings()
    assert any("pool live (max_spend) has spent 11.00 USD of 10.00 USD (reached" in t for t in texts), texts
    assert any("sweep trial of job sw" in t and "(93%)" in t for t in texts), texts
    watch = report.BudgetWatch(ledger, JobRef("live", "sw"), every=0)
    assert watch.active and len(watch.check()) == 2 and watch.check() == []


def test_sweep_cost_says_what_was_spent_when_the_best_trial_ended(ledger: LedgerBackend) -> None:
    now = ledger.spans["live"][0].end - 1  # the fixture's now (a second clock read drifts on a busy machine)
    best = TaskInfo(id="trial-00000", job_id="sw", state=TaskState.SUCCEEDED, ended_at=now - 3)
    cost = report.sweep_cost(ledger, JobRef("live", "sw"), best)
    assert cost is not None and cost.trials == {"trial-00000": pytest.approx(7.0)}
    assert cost.best_after == pytest.approx(3.0, abs=0.01)


def test_a_sweep_on_a_pool_without_a_price_is_said_to_be_unpriced(ledger: LedgerBackend) -> None:
    now = time.time()
    ledger.spans["live"].append(span(now - 5, now - 1, job="free", task="trial-00000", price=0,
                                     pool="live"))
    cost = report.sweep_cost(ledger, JobRef("live", "free"), None)
    assert cost is not None and cost.unpriced and cost.total == 0
    priced = report.sweep_cost(ledger, JobRef("live", "sw"), None)
    assert priced is not None and not priced.unpriced


def test_orch_cost_renders_table_json_and_csv(ledger: LedgerBackend) -> None:
    runner = CliRunner()
    table = runner.invoke(cli, ["cost"])
    assert table.exit_code == 0, table.output
    assert "gone (deleted)" in table.output and "IDLE" in table.output and "sw" in table.output
    data = json.loads(runner.invoke(cli, ["cost", "--pool", "live", "-o", "json"]).output)
    assert [p["pool"] for p in data["pools"]] == ["live"] and data["pools"][0]["idle_usd"] == pytest.approx(4.0)
    lines = runner.invoke(cli, ["cost", "--job", "sw", "-o", "csv"]).output.splitlines()
    assert lines[0] == "pool,job,task,node_hours,usd" and lines[1].startswith("live,sw,,")
    assert lines[2].startswith("live,sw,trial-00000,")
    assert runner.invoke(cli, ["cost", "--since", "soon"]).exit_code == 2
