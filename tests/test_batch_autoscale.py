"""The local Batch service's automatic scaling over time, pool statistics and node lives.

Formulas are the documented language (types, operations, functions, sampled metrics with their
delay, ``InsufficientSampleData``), evaluated at creation, on ``enableautoscale`` and on the
pool's schedule; what Batch refuses (``%``, ``ceil``, an interval under 5 minutes, enabling
autoscale twice within 30 seconds or while resizing, the retired usage metrics) is refused."""
from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from tests.batch_service import (
    BatchService,
    ServiceSettings,
    quick_autoscale,
)
from tests.batch_service.autoscale import FormulaSyntaxError, evaluate, parse
from tests.batch_service.samples import METRICS, Metric, MetricHistory
from tests.support.batch_sdk import (
    error_code,
    new_job,
    shell,
    vm_config,
    wait_for,
)

NOW = datetime(2026, 12, 1, 17, 0, 0, tzinfo=timezone.utc)


def metrics(history: MetricHistory, now: datetime = NOW, *, period: float = 30.0,
            delay: float = 60.0) -> dict[str, Metric]:
    return {name: Metric(name, 7.0, history, now.timestamp(), period, delay) for name in METRICS}


def pending_history(values: list[float], now: datetime = NOW, period: float = 30.0) -> MetricHistory:
    """Samples of $PendingTasks every ``period`` seconds, the last one taken ``now``."""
    history = MetricHistory()
    start = now.timestamp() - period * (len(values) - 1)
    for index, value in enumerate(values):
        history.record(start + period * index, {"$PendingTasks": value})
    return history


def run(formula: str, history: MetricHistory | None = None, targets: tuple[int, int] = (0, 0)):  # type: ignore[no-untyped-def]
    return evaluate(formula, metrics=metrics(history or MetricHistory()), targets=targets, now=NOW)


def test_the_formula_language_has_the_documented_types_operations_and_functions() -> None:
    outcome = run("""// comments and line breaks are allowed
        now = time();
        wake = time("Tue, 01 Dec 2026 16:30:00 GMT");
        quiet = now - wake;
        later = wake + TimeInterval_Minute * 45;
        a = avg(1, 2, 3) + len(1, 2) + min(4, 2) + max(1, 9) + sum(1, 1) + range(2, 5) + val(vec, 1);
        vec = $PendingTasks.GetSample(3);
        $TargetDedicated = (7 + 3) / 4;
        $TargetLowPriorityNodes = quiet > TimeInterval_Minute * 29 && now.hour == 17 && now.weekday == 2 ? 3 : 0;
        $NodeDeallocationOption = taskcompletion;""", pending_history([1, 2, 3, 4, 5, 6]))
    assert outcome.error is not None and "undefined variable vec" in str(outcome.error)  # used before assigned
    outcome = run("vec = $PendingTasks.GetSample(3); v = val(vec, 1) + avg(vec, 7);"
                  "$TargetDedicated = (7 + 3) / 4; later = time(\"2026-12-01T16:00:00Z\") + TimeInterval_Minute * 45;"
                  "$TargetLowPriorityNodes = time() - later > TimeInterval_Zero && time().weekday == 2 ? 3 : 0;"
                  "$NodeDeallocationOption = taskcompletion;", pending_history([1, 2, 3, 4, 5, 6]))
    assert outcome.error is None
    assert (outcome.target("$TargetDedicatedNodes", 0), outcome.target("$TargetLowPriorityNodes", 0)) == (2, 3)
    assert outcome.variables["vec"].items == (2.0, 3.0, 4.0)  # the last three available: 5 and 6 are too recent
    assert outcome.results() == ("$TargetLowPriorityNodes=3;$TargetDedicated=2.5;$NodeDeallocationOption="
                                 "taskcompletion;later=2026-12-01T16:45:00.000Z;v=7;vec=[2,3,4]")
    assert outcome.deallocation() == "taskcompletion"


@pytest.mark.parametrize(("formula", "says"), [
    ("$TargetDedicatedNodes = 5 % 2;", "unexpected character '%'"),
    ("$TargetDedicatedNodes = ceil(2.5);", "unknown function ceil()"),
    ("$PendingTasks = 1;", "$PendingTasks is read-only"),
    ("a = 1\nb = 2;", "Line 2, Col 1: expected ;"),
    ("a = $PendingTasks.Latest();", "unknown method Latest()"),
])
def test_what_does_not_parse_is_a_syntax_error(formula: str, says: str) -> None:
    with pytest.raises(FormulaSyntaxError) as error:
        parse(formula)
    assert says in str(error.value)


@pytest.mark.parametrize(("formula", "code", "says"), [
    ("a = time() - TimeInterval_Hour;", "InvalidFormula", "operator - is not defined for timestamp and timeinterval"),
    ("a = max($PendingTasks.GetSample(1)) + missing;", "InvalidFormula", "undefined variable missing"),
    ("a = avg($PendingTasks.GetSample(TimeInterval_Minute * 10, 100));", "InsufficientSampleData",
     "Line 1, Col 23: Insufficient data from data set: $PendingTasks wanted 100%, received 95%"),
    ("a = 1 / 0;", "InvalidFormula", "division by zero"),
])
def test_an_evaluation_that_fails_reports_batch_s_error(formula: str, code: str, says: str) -> None:
    outcome = run(formula, pending_history([1.0] * 21))  # 10 minutes back, the last 2 samples not yet available
    assert outcome.error is not None and outcome.error.code == code and says in str(outcome.error), outcome.error


def test_samples_arrive_late_and_windows_look_back() -> None:
    history = pending_history([float(n) for n in range(21)])  # 0 .. 20, one every 30 s, 20 taken now
    got = run("last = $PendingTasks.GetSample(1); recent = $PendingTasks.GetSample(TimeInterval_Minute * 2);"
              "older = $PendingTasks.GetSample(TimeInterval_Minute * 2, TimeInterval_Minute * 4);"
              "share = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 2); count = $PendingTasks.Count();"
              "first = $PendingTasks.HistoryBeginTime(); period = $PendingTasks.GetSamplePeriod();"
              "direct = $PendingTasks * 2;", history).variables
    assert got["last"].items == (18.0,) and got["recent"].items == (16.0, 17.0, 18.0)
    assert got["older"].items == (12.0, 13.0, 14.0, 15.0, 16.0) and got["share"] == 75.0
    assert got["count"] == 19.0 and str(got["first"]) == "2026-12-01T16:50:00.000Z" and str(got["period"]) == "00:00:30"
    assert got["direct"] == 14.0  # a metric used as a value is its current value
    assert run("x = $PendingTasks.GetSample(1);").variables["x"].items == ()  # a new pool has no samples yet


def test_stop_ends_the_evaluation_and_aliases_yield_to_full_names() -> None:
    outcome = run("$TargetDedicated = 4; $TargetDedicatedNodes = 2; stop(); $TargetLowPriorityNodes = 9;",
                  targets=(0, 5))
    assert outcome.error is None and outcome.target("$TargetDedicatedNodes", 0) == 2
    assert outcome.target("$TargetLowPriorityNodes", 5) == 5  # preset to the pool's target, never reached


# -- the service --------------------------------------------------------------------------------


IDLE_FORMULA = """quiet = TimeInterval_Second * 1;
busy = max(0, $PendingTasks.GetSample(1), $PendingTasks.GetSample(quiet));
$TargetDedicatedNodes = busy > 0 ? 1 : 0;
$NodeDeallocationOption = taskcompletion;"""


def scaled(pool_id: str, formula: str) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vm_config(),
                                    enable_auto_scale=True, auto_scale_formula=formula,
                                    auto_scale_evaluation_interval=timedelta(minutes=5))


@pytest.mark.slow
def test_a_pool_follows_its_sampled_metrics_and_empties_once_quiet(service: BatchService, client: BatchClient) -> None:
    with quick_autoscale(service.settings, 0.2, sample_s=0.05, delay_s=0.1):
        client.create_pool(scaled("quiet", IDLE_FORMULA))
        assert client.get_pool("quiet").target_dedicated_nodes == 0
        job_id = new_job(client, "wakes", "quiet")
        client.create_task(job_id, m.BatchTaskCreateOptions(id="t", **shell("sleep 1.5")))
        wait_for(lambda: client.get_pool("quiet").current_dedicated_nodes == 1, "a node for the task")
        wait_for(lambda: client.get_task(job_id, "t").state == m.BatchTaskState.RUNNING, "the task to run")
        ended = wait_for(lambda: (task := client.get_task(job_id, "t")).state == m.BatchTaskState.COMPLETED and task,
                         "the task to end")
        pool = wait_for(lambda: (pool := client.get_pool("quiet")).current_dedicated_nodes == 0
                        and pool.allocation_state == m.AllocationState.STEADY and pool, "the pool to empty")
        quiet_for = (pool.allocation_state_transition_time - ended.execution_info.end_time).total_seconds()
        assert 0.95 <= quiet_for < 3.0  # the quiet second (less up to a sample period), then the next evaluation
        assert "$TargetDedicatedNodes=0" in pool.auto_scale_run.results


@pytest.mark.slow
def test_a_failed_evaluation_keeps_the_targets_and_says_why(service: BatchService, client: BatchClient) -> None:
    with quick_autoscale(service.settings, 0.2):
        client.create_pool(scaled("strict", "$TargetDedicatedNodes = avg($PendingTasks.GetSample("
                                            "TimeInterval_Minute * 10, 70)) + 1;"))
        run = client.get_pool("strict").auto_scale_run
        assert run.error.code == "InsufficientSampleData" and client.get_pool("strict").target_dedicated_nodes == 0
        assert "wanted 70%, received 0%" in run.error.error_values[0].value
    client.begin_delete_pool("strict", polling_interval=0.05).result()


@pytest.mark.slow
def test_enabling_autoscale_applies_a_formula_at_once_within_batch_s_rules(service: BatchService,
                                                                            client: BatchClient) -> None:
    client.create_pool(scaled("enabled", "$TargetDedicatedNodes = 0;"))
    wait_for(lambda: client.get_pool("enabled").allocation_state == m.AllocationState.STEADY, "steady")
    client.enable_pool_auto_scale("enabled", m.BatchPoolEnableAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes = 1;"))
    assert client.get_pool("enabled").target_dedicated_nodes == 1  # evaluated when enabled
    wait_for(lambda: client.get_pool("enabled").allocation_state == m.AllocationState.STEADY, "steady")
    with pytest.raises(HttpResponseError) as too_soon:  # within 30 s of the last time
        client.enable_pool_auto_scale("enabled", m.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 0;"))
    assert too_soon.value.status_code == 409 and "once every 30 seconds" in str(too_soon.value)
    service.settings.enable_autoscale_min_interval_s = 0.0
    try:
        refusals = [("$TargetDedicatedNodes = ;", None, 400, "AutoScalingFormulaSyntaxError"),
                    (None, timedelta(minutes=4), 400, "InvalidPropertyValue")]
        for formula, interval, status, code in refusals:
            with pytest.raises(HttpResponseError) as refused:
                client.enable_pool_auto_scale("enabled", m.BatchPoolEnableAutoScaleOptions(
                    auto_scale_formula=formula, auto_scale_evaluation_interval=interval))
            assert (refused.value.status_code, error_code(refused.value)) == (status, code)
        service.settings.allocation_delay_s = 0.5  # a resize that takes a while
        client.enable_pool_auto_scale("enabled", m.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 0;"))
        with pytest.raises(HttpResponseError) as resizing:  # the node is leaving: a resize is under way
            client.enable_pool_auto_scale("enabled", m.BatchPoolEnableAutoScaleOptions(
                auto_scale_formula="$TargetDedicatedNodes = 1;"))
        assert resizing.value.status_code == 409 and "while the pool is resizing" in str(resizing.value)
        service.settings.allocation_delay_s = ServiceSettings().allocation_delay_s
        wait_for(lambda: client.get_pool("enabled").allocation_state == m.AllocationState.STEADY, "steady")
        with pytest.raises(HttpResponseError) as bad_body:  # a property the operation does not have
            client.enable_pool_auto_scale("enabled", {"autoScaleFormula": "$TargetDedicatedNodes=0;", "x": 1})
        assert error_code(bad_body.value) == "UnsupportedProperty"
    finally:
        service.settings.enable_autoscale_min_interval_s = 30.0
    client.begin_delete_pool("enabled", polling_interval=0.05).result()


@pytest.mark.slow
def test_node_lives_and_pool_statistics_count_billed_node_time(service: BatchService, client: BatchClient) -> None:
    client.create_pool(m.BatchPoolCreateOptions(id="counted", vm_size="standard_d2s_v3",
                                                virtual_machine_configuration=vm_config(), target_dedicated_nodes=1,
                                                target_low_priority_nodes=1))
    wait_for(lambda: len(list(client.list_nodes("counted"))) == 2, "two nodes")
    spot = next(n.id for n in client.list_nodes("counted") if not n.is_dedicated)
    wait_for(lambda: client.get_node("counted", spot).state == m.BatchNodeState.IDLE, "an idle Spot node")
    service.preempt("counted", spot, restore_after_s=0.3)
    wait_for(lambda: client.get_node("counted", spot).state == m.BatchNodeState.IDLE, "the Spot node back")
    service.settings.stats_rollup_s = 0.0
    try:
        time.sleep(0.3)
        stats = client.get_pool("counted", expand=["stats"]).pool_statistics
    finally:
        service.settings.stats_rollup_s = 1800.0
    lives = {life.node_id: life for life in service.node_lives("counted")}
    assert len(lives) == 2 and lives[spot].preempted and all(end is not None for _, end in lives[spot].preempted)
    dedicated = next(life for life in lives.values() if life.dedicated)
    core_seconds = stats.usage_statistics.dedicated_core_time.total_seconds()
    rolled_at = stats.usage_statistics.last_update_time.timestamp()
    assert core_seconds == pytest.approx(2 * dedicated.billed_seconds(rolled_at), abs=0.01)  # D2s: two vCPUs
    with pytest.raises(HttpResponseError) as wrong:
        client.get_pool("counted", expand=["nodes"])
    assert error_code(wrong.value) == "InvalidQueryParameterValue"
    client.begin_delete_pool("counted", polling_interval=0.05).result()
    gone = service.node_lives("counted")  # kept after the pool is gone
    assert all(life.removed is not None for life in gone)
    with urllib.request.urlopen(f"{service.url}/_admin/nodelives?poolId=counted") as answer:
        assert len(json.loads(answer.read())["value"]) == 2


def test_pool_usage_metrics_are_retired(client: BatchClient) -> None:
    with pytest.raises(HttpResponseError) as retired:
        list(client.list_pool_usage_metrics())
    assert retired.value.status_code == 400 and "retired on 30 September 2024" in str(retired.value)


@pytest.mark.slow
def test_the_deallocation_option_decides_what_happens_to_running_tasks(service: BatchService,
                                                                       client: BatchClient) -> None:
    service.settings.enable_autoscale_min_interval_s = 0.0
    try:
        for option, outcome in (("taskcompletion", "completed"), ("requeue", "active")):
            pool_id = f"leaving-{option}"
            client.create_pool(scaled(pool_id, "$TargetDedicatedNodes = 1;"))
            wait_for(lambda: len(list(client.list_nodes(pool_id))) == 1, "a node")  # noqa: B023
            job_id = new_job(client, f"busy-{option}", pool_id)
            client.create_task(job_id, m.BatchTaskCreateOptions(id="t", **shell("sleep 1.5")))
            wait_for(lambda: client.get_task(job_id, "t").state == m.BatchTaskState.RUNNING, "it runs")  # noqa: B023
            wait_for(lambda: client.get_pool(pool_id).allocation_state == m.AllocationState.STEADY, "steady")  # noqa: B023
            client.enable_pool_auto_scale(pool_id, m.BatchPoolEnableAutoScaleOptions(
                auto_scale_formula=f"$TargetDedicatedNodes = 0; $NodeDeallocationOption = {option};"))
            if option == "taskcompletion":  # the node waits for its task
                wait_for(lambda: [n.state for n in client.list_nodes(pool_id)]  # noqa: B023
                         == [m.BatchNodeState.LEAVING_POOL], "the node leaving")
            task = wait_for(lambda: (task := client.get_task(job_id, "t")).state == outcome and task,  # noqa: B023
                            f"the task to be {outcome}")
            pool = wait_for(lambda: (pool := client.get_pool(pool_id)).allocation_state == m.AllocationState.STEADY
                            and not list(client.list_nodes(pool_id)) and pool, "the node gone")  # noqa: B023
            if option == "taskcompletion":  # the node left once its task ended, and was billed until then
                assert task.execution_info.result == "success"
                assert pool.allocation_state_transition_time >= task.execution_info.end_time
            else:
                assert task.execution_info.requeue_count == 1
            client.begin_delete_pool(pool_id, polling_interval=0.05).result()
    finally:
        service.settings.enable_autoscale_min_interval_s = 30.0
