"""Spot preemption in the local Batch service (fault injection), through the azure-batch SDK."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from tests.batch_service import BatchService, quick_autoscale
from tests.support.batch_sdk import (
    completed,
    new_job,
    shell,
    task_file,
    vm_config,
    wait_for,
)

pytestmark = pytest.mark.slow




def spot_pool(client: BatchClient, pool_id: str, spot: int, dedicated: int = 0, **kwargs: object) -> str:
    client.create_pool(m.BatchPoolCreateOptions(
        id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vm_config(),
        target_dedicated_nodes=dedicated, target_low_priority_nodes=spot, **kwargs))  # type: ignore[arg-type]
    wait_for(lambda: len(nodes := list(client.list_nodes(pool_id))) == spot + dedicated
             and all(n.state == m.BatchNodeState.IDLE for n in nodes), f"idle nodes in {pool_id}")
    return pool_id


def running(client: BatchClient, job_id: str, task_id: str, marker: str) -> m.BatchTask:
    """The task once it runs and its stdout shows ``marker``."""
    def probe() -> m.BatchTask | None:
        task = client.get_task(job_id, task_id)
        if task.state != m.BatchTaskState.RUNNING:
            return None
        return task if marker.encode() in task_file(client, job_id, task_id, "stdout.txt") else None
    return wait_for(probe, f"{job_id}/{task_id} to run")


def test_a_preempted_spot_node_requeues_its_task_and_comes_back(service: BatchService, client: BatchClient) -> None:
    pool = spot_pool(client, "spot", spot=2)
    job_id = new_job(client, "work", pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id="long", constraints=m.BatchTaskConstraints(max_task_retry_count=0),
        **shell("echo started on $AZ_BATCH_NODE_ID; touch mine.txt; sleep 2; echo done")))
    first = running(client, job_id, "long", "started")
    node_id = first.node_info.node_id
    assert (client.get_pool(pool).current_low_priority_nodes, first.execution_info.requeue_count) == (2, 0)

    preemption = service.preempt(pool, job_id=job_id, task_id="long", restore_after_s=1.0)
    assert (preemption.node_id, preemption.requeued) == (node_id, (f"{job_id}/long".lower(),))
    node = client.get_node(pool, node_id)
    assert node.state == m.BatchNodeState.PREEMPTED and node.is_dedicated is False
    pool_now = client.get_pool(pool)  # a preempted node stays in the pool and in its Spot count
    assert (pool_now.current_low_priority_nodes, pool_now.target_low_priority_nodes) == (2, 2)

    task = completed(client, job_id, "long")
    info = task.execution_info
    assert (info.exit_code, info.retry_count, info.requeue_count) == (0, 0, 1)  # a requeue is not a retry
    assert info.last_requeue_time is not None and info.last_requeue_time <= info.start_time
    assert task.node_info.node_id != node_id
    assert task_file(client, job_id, "long", "stdout.txt").decode().count("started") == 1  # a new attempt's file

    def back() -> bool:
        return client.get_node(pool, node_id).state == m.BatchNodeState.IDLE
    wait_for(back, "the preempted node to be replaced")  # same id, re-initialized, local files gone
    with pytest.raises(Exception):
        b"".join(client.download_node_file(pool, node_id, f"{first.node_info.task_root_directory}/wd/mine.txt"))


def test_a_multi_instance_task_is_requeued_whole(service: BatchService, client: BatchClient) -> None:
    pool = spot_pool(client, "spotmpi", spot=3, enable_inter_node_communication=True)
    job_id = new_job(client, "gang", pool)
    coordination = "/bin/sh -c 'echo $AZ_BATCH_NODE_ID >> $AZ_BATCH_TASK_SHARED_DIR/joined.txt; sleep 30 &'"
    multi = m.MultiInstanceSettings(number_of_instances=2, coordination_command_line=coordination)
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id="ranks", multi_instance_settings=multi, **shell("echo primary up; sleep 2; echo finished")))
    first = running(client, job_id, "ranks", "primary up")
    secondary = next(n.id for n in client.list_nodes(pool)
                     if n.id != first.node_info.node_id and n.running_tasks_count)

    preemption = service.preempt(pool, secondary, restore_after_s=None)  # a secondary instance's node
    assert preemption.requeued == (f"{job_id}/ranks".lower(),)
    task = completed(client, job_id, "ranks")
    assert (task.execution_info.exit_code, task.execution_info.requeue_count) == (0, 1)
    nodes = {n.id: n for n in client.list_nodes(pool)}
    assert nodes[secondary].state == m.BatchNodeState.PREEMPTED  # no capacity came back
    assert secondary not in (task.node_info.node_id,)
    assert sum(n.running_tasks_count or 0 for n in nodes.values()) == 0  # every instance's processes ended


def test_autoscale_replaces_preempted_spot_capacity_with_dedicated_nodes(service: BatchService,
                                                                        client: BatchClient) -> None:
    formula = ("preempted = $PreemptedNodeCount.GetSample(TimeInterval_Second);\n"  # preempted throughout a second
               "$TargetDedicatedNodes = len(preempted) > 0 ? min(2, preempted) : 0;\n"
               "$TargetLowPriorityNodes = 2;")
    with quick_autoscale(service.settings, 0.2):
        client.create_pool(m.BatchPoolCreateOptions(
            id="scaledspot", vm_size="standard_d2s_v3", virtual_machine_configuration=vm_config(),
            enable_auto_scale=True, auto_scale_formula=formula, auto_scale_evaluation_interval=timedelta(minutes=5)))
        wait_for(lambda: len(list(client.list_nodes("scaledspot"))) == 2, "two Spot nodes")
        spot = list(client.list_nodes("scaledspot"))[0].id
        wait_for(lambda: client.get_node("scaledspot", spot).state == m.BatchNodeState.IDLE, "an idle node")
        service.preempt("scaledspot", spot, restore_after_s=None)
        wait_for(lambda: client.get_pool("scaledspot").current_dedicated_nodes == 1, "a dedicated replacement")
        assert "$TargetDedicatedNodes=1" in client.get_pool("scaledspot").auto_scale_run.results


def test_the_admin_api_preempts_and_refuses_dedicated_nodes(service: BatchService, client: BatchClient) -> None:
    pool = spot_pool(client, "mixed", spot=1, dedicated=1)
    nodes = {n.is_dedicated: n.id for n in client.list_nodes(pool)}

    def post(body: dict[str, object]) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(f"{service.url}/_admin/preemptions", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, body = post({"poolId": pool, "nodeId": nodes[True]})
    assert status == 409 and body["code"] == "OperationInvalidForCurrentState"
    status, body = post({"poolId": pool, "nodeId": nodes[False], "restoreAfterSeconds": None})
    assert (status, body) == (201, {"poolId": pool, "nodeId": nodes[False], "requeuedTasks": []})
    assert client.get_node(pool, nodes[False]).state == m.BatchNodeState.PREEMPTED
    assert post({"poolId": pool, "nodeId": nodes[False]})[0] == 409  # already preempted


def test_retries_made_before_a_requeue_still_count(service: BatchService, client: BatchClient) -> None:
    pool = spot_pool(client, "retries", spot=2)
    job_id = new_job(client, "flaky", pool)
    script = ("if [ -e $AZ_BATCH_NODE_SHARED_DIR/failed-once ]; then echo second try; sleep 3; exit 4; fi; "
              "touch $AZ_BATCH_NODE_SHARED_DIR/failed-once; exit 3")
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id="t", constraints=m.BatchTaskConstraints(max_task_retry_count=1), **shell(script)))
    running(client, job_id, "t", "second try")
    service.preempt(pool, job_id=job_id, task_id="t", restore_after_s=None)
    task = completed(client, job_id, "t")
    # the budget of one retry was spent before the requeue: the requeued run's failure is final
    assert (task.execution_info.retry_count, task.execution_info.requeue_count) == (1, 1)
    assert task.execution_info.exit_code == 3
