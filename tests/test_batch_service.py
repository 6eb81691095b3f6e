"""The local Batch service, driven through the real azure-batch SDK over HTTP with Shared Key auth."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.batch.models._models import (
    BatchJobTerminateOptions,  # not exported by azure.batch.models in 15.1.0
)
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest

from tests.batch_service import (
    BatchService,
    ServiceSettings,
    quick_autoscale,
    self_signed_cert,
    start_batch_service,
)
from tests.support.batch_sdk import (
    POLL,
    after,
    client_for,
    completed,
    error_code,
    idle_nodes,
    job_in_state,
    new_job,
    pool_options,
    shell,
    task_file,
    vm_config,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent




@pytest.fixture(scope="module")
def fast_retry_client(service: BatchService) -> BatchClient:
    """A client whose retries back off briefly (Retry-After headers are still honoured)."""
    return client_for(service, retry_backoff_factor=0.01)


@pytest.fixture(scope="module")
def pool(client: BatchClient) -> str:
    """A shared pool of two idle nodes with four task slots each."""
    client.create_pool(pool_options("shared", 2, task_slots_per_node=4, enable_inter_node_communication=True))
    idle_nodes(client, "shared", 2)
    return "shared"


def test_wrong_key_is_rejected_with_authentication_failed(service: BatchService) -> None:
    other_key = "c2VjcmV0" * 8
    with pytest.raises(HttpResponseError) as raised:
        client_for(service, key=other_key).get_pool("nope")
    assert raised.value.status_code == 403
    assert error_code(raised.value) == "AuthenticationFailed"
    assert "odata.metadata" in raised.value.response.json()


def test_requests_without_auth_or_api_version_are_rejected(service: BatchService, client: BatchClient) -> None:
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(f"{service.url}/pools?api-version=2025-06-01")
    assert unsigned.value.code == 401
    assert json.loads(unsigned.value.read())["code"] == "AuthenticationFailed"
    with pytest.raises(HttpResponseError) as missing:
        client.send_request(HttpRequest("GET", f"{service.url}/pools"))
    assert missing.value.status_code == 400 and error_code(missing.value) == "MissingRequiredQueryParameter"
    with pytest.raises(HttpResponseError) as unsupported:
        client.send_request(HttpRequest("GET", f"{service.url}/pools?api-version=1999-01-01"))
    assert unsupported.value.status_code == 400 and error_code(unsupported.value) == "UnsupportedRequestVersion"


def test_pool_lifecycle_with_start_task_resize_and_delete(client: BatchClient) -> None:
    start_task = m.BatchStartTask(command_line="/bin/sh -c 'echo started on $AZ_BATCH_NODE_ID'", wait_for_success=True)
    policy = m.BatchTaskSchedulingPolicy(node_fill_type=m.BatchNodeFillType.PACK)
    client.create_pool(pool_options("lifecycle", 1, task_slots_per_node=3, start_task=start_task,
                                    task_scheduling_policy=policy, target_low_priority_nodes=1))
    with pytest.raises(ResourceExistsError) as duplicate:
        client.create_pool(pool_options("lifecycle", 1))
    assert error_code(duplicate.value) == "PoolExists"
    nodes = idle_nodes(client, "lifecycle", 2)
    assert sorted(node.is_dedicated for node in nodes) == [False, True]
    assert all(node.start_task_info.exit_code == 0 for node in nodes)
    stdout = b"".join(client.download_node_file("lifecycle", nodes[0].id, "startup/stdout.txt"))
    assert stdout.decode().strip() == f"started on {nodes[0].id}"
    pool = client.get_pool("lifecycle")
    assert (pool.vm_size, pool.task_slots_per_node, pool.task_scheduling_policy.node_fill_type) == (
        "standard_d2s_v3", 3, m.BatchNodeFillType.PACK)
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 1)
    assert pool.virtual_machine_configuration.node_agent_sku_id == "batch.node.ubuntu 24.04"
    client.begin_resize_pool("lifecycle", m.BatchPoolResizeOptions(target_dedicated_nodes=2),
                             polling_interval=POLL).result()
    resized = client.get_pool("lifecycle")
    assert (resized.current_dedicated_nodes, resized.current_low_priority_nodes) == (2, 0)
    idle_nodes(client, "lifecycle", 2)
    client.begin_delete_pool("lifecycle", polling_interval=POLL).result()
    with pytest.raises(ResourceNotFoundError) as gone:
        client.get_pool("lifecycle")
    assert error_code(gone.value) == "PoolNotFound"


def test_failing_start_task_marks_node_starttaskfailed(client: BatchClient) -> None:
    start_task = m.BatchStartTask(command_line="/bin/sh -c 'echo cannot mount >&2; exit 7'", wait_for_success=True)
    client.create_pool(pool_options("badstart", 1, start_task=start_task))

    def failed_node() -> m.BatchNode | None:
        nodes = list(client.list_nodes("badstart"))
        return nodes[0] if nodes and nodes[0].state == m.BatchNodeState.START_TASK_FAILED else None

    node = wait_for(failed_node, "start task failure")
    assert node.start_task_info.exit_code == 7
    assert node.start_task_info.result == m.BatchTaskExecutionResult.FAILURE
    stderr = b"".join(client.download_node_file("badstart", node.id, "startup/stderr.txt"))
    assert stderr == b"cannot mount\n"
    client.begin_delete_pool("badstart", polling_interval=POLL).result()


@pytest.mark.slow
def test_create_tasks_adds_250_tasks_in_chunks_and_all_run(service: BatchService, client: BatchClient,
                                                            pool: str) -> None:
    job_id = new_job(client, "many", pool)
    service.clear_requests()
    tasks = [m.BatchTaskCreateOptions(id=f"t{i:03d}", **shell(f"exit {i % 3}")) for i in range(250)]
    result = client.create_tasks(job_id, tasks)
    assert len(result.result_values) == 250
    assert len(service.requests(method="POST", path="/addtaskcollection$")) == 3

    def all_done() -> list[m.BatchTask] | None:
        listed = list(client.list_tasks(job_id))
        return listed if all(task.state == m.BatchTaskState.COMPLETED for task in listed) else None

    listed = wait_for(all_done, "250 tasks to complete", timeout=60)
    assert len(listed) == 250
    assert {task.id: task.execution_info.exit_code for task in listed} == {f"t{i:03d}": i % 3 for i in range(250)}
    results = [task.execution_info.result for task in listed]
    assert results.count(m.BatchTaskExecutionResult.SUCCESS) == 84


def test_collection_of_more_than_100_tasks_is_rejected(client: BatchClient, pool: str) -> None:
    job_id = new_job(client, "toomany", pool)
    tasks = [m.BatchTaskCreateOptions(id=f"t{i}", command_line="true") for i in range(101)]
    group = m.BatchTaskGroup(task_values=tasks)
    with pytest.raises(HttpResponseError) as raised:
        client.create_task_collection(job_id, group)
    assert raised.value.status_code == 400 and error_code(raised.value) == "InvalidPropertyValue"


def test_oversized_collection_gets_413_and_the_sdk_splits_it(service: BatchService, client: BatchClient,
                                                             pool: str) -> None:
    job_id = new_job(client, "bigbody", pool, all_tasks_complete_mode=m.BatchAllTasksCompleteMode.NO_ACTION)
    padding = [m.EnvironmentSetting(name="PADDING", value="x" * 1000)]
    tasks = [m.BatchTaskCreateOptions(id=f"t{i}", command_line="true", environment_settings=padding)
             for i in range(8)]
    service.settings.max_body_bytes = 4000
    try:
        with pytest.raises(HttpResponseError) as raised:
            client.create_task_collection(job_id, m.BatchTaskGroup(task_values=tasks))
        assert raised.value.status_code == 413 and error_code(raised.value) == "RequestBodyTooLarge"
        result = client.create_tasks(job_id, tasks)
    finally:
        service.settings.max_body_bytes = ServiceSettings().max_body_bytes
    assert sorted(r.task_id for r in result.result_values) == [f"t{i}" for i in range(8)]
    assert len(service.requests(method="POST", path="/jobs/bigbody/addtaskcollection$")) > 2


def test_task_files_support_ranges_and_properties(client: BatchClient, pool: str) -> None:
    job_id = new_job(client, "files", pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="digits", **shell("printf 0123456789 > digits.txt")))
    assert completed(client, job_id, "digits").execution_info.exit_code == 0
    assert task_file(client, job_id, "digits", "wd/digits.txt", ocp_range="bytes=2-5") == b"2345"
    assert task_file(client, job_id, "digits", "wd/digits.txt", ocp_range="bytes=7-") == b"789"
    assert task_file(client, job_id, "digits", "wd/digits.txt") == b"0123456789"
    properties = client.get_task_file_properties(job_id, "digits", "wd/digits.txt")
    assert int(properties.content_length) == 10 and not properties.is_directory
    assert client.get_task_file_properties(job_id, "digits", "wd").is_directory
    with pytest.raises(HttpResponseError) as bad_range:
        task_file(client, job_id, "digits", "wd/digits.txt", ocp_range="bytes=20-30")
    assert bad_range.value.status_code == 416
    with pytest.raises(ResourceNotFoundError) as missing:
        task_file(client, job_id, "digits", "wd/nothing.txt")
    # Streamed downloads leave the error body unread, so the SDK cannot parse its code.
    assert json.loads(missing.value.response.read())["code"] == "FileNotFound"


def test_tasks_get_the_batch_environment_and_directory_layout(service: BatchService, client: BatchClient,
                                                                pool: str) -> None:
    job_id = new_job(client, "envjob", pool,
                     common_environment_settings=[m.EnvironmentSetting(name="FROM_JOB", value="job-level")])
    names = ["AZ_BATCH_ACCOUNT_NAME", "AZ_BATCH_POOL_ID", "AZ_BATCH_JOB_ID", "AZ_BATCH_TASK_ID", "AZ_BATCH_NODE_ID",
             "AZ_BATCH_NODE_IS_DEDICATED", "AZ_BATCH_TASK_DIR", "AZ_BATCH_TASK_WORKING_DIR", "AZ_BATCH_NODE_ROOT_DIR",
             "AZ_BATCH_NODE_SHARED_DIR", "AZ_BATCH_NODE_STARTUP_DIR", "FROM_JOB", "FROM_TASK"]
    script = "; ".join(f'echo "{name}=${name}"' for name in names) + '; echo "PWD=$(pwd)"; echo $0 $1'
    client.create_task(job_id, m.BatchTaskCreateOptions(
        id="env", command_line=f"/bin/sh -c '{script}' first \"second arg\"",
        environment_settings=[m.EnvironmentSetting(name="FROM_TASK", value="task-level")]))
    task = completed(client, job_id, "env")
    lines = task_file(client, job_id, "env", "stdout.txt").decode().splitlines()
    env = dict(line.split("=", 1) for line in lines[:-1])
    node_root = service.root_dir / "nodes" / task.node_info.node_id
    task_dir = node_root / "workitems" / job_id / "job-1" / "env"
    assert env == {
        "AZ_BATCH_ACCOUNT_NAME": service.account, "AZ_BATCH_POOL_ID": pool, "AZ_BATCH_JOB_ID": job_id,
        "AZ_BATCH_TASK_ID": "env", "AZ_BATCH_NODE_ID": task.node_info.node_id, "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_TASK_DIR": str(task_dir), "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
        "AZ_BATCH_NODE_ROOT_DIR": str(node_root), "AZ_BATCH_NODE_SHARED_DIR": str(node_root / "shared"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(node_root / "startup"), "FROM_JOB": "job-level", "FROM_TASK": "task-level",
        "PWD": str(task_dir / "wd"),
    }
    assert lines[-1] == "first second arg"
    assert task.node_info.task_root_directory == f"workitems/{job_id}/job-1/env"


def test_retries_and_wall_clock_limit(client: BatchClient, pool: str) -> None:
    job_id = new_job(client, "retries", pool)
    client.create_tasks(job_id, [
        m.BatchTaskCreateOptions(id="always-fails", constraints=m.BatchTaskConstraints(max_task_retry_count=2),
                                 **shell("echo attempt >> attempts.txt; exit 3")),
        m.BatchTaskCreateOptions(id="second-try", constraints=m.BatchTaskConstraints(max_task_retry_count=3),
                                 **shell("test -f marker && exit 0; touch marker; exit 1")),
        m.BatchTaskCreateOptions(id="too-slow",
                                 constraints=m.BatchTaskConstraints(max_wall_clock_time=timedelta(seconds=1)),
                                 **shell("sleep 60")),
    ])
    fails = completed(client, job_id, "always-fails").execution_info
    assert (fails.exit_code, fails.retry_count, fails.result) == (3, 2, m.BatchTaskExecutionResult.FAILURE)
    assert task_file(client, job_id, "always-fails", "wd/attempts.txt") == b"attempt\n" * 3
    second = completed(client, job_id, "second-try").execution_info
    assert (second.exit_code, second.retry_count, second.result) == (0, 1, m.BatchTaskExecutionResult.SUCCESS)
    slow = completed(client, job_id, "too-slow").execution_info
    assert slow.result == m.BatchTaskExecutionResult.FAILURE and slow.retry_count == 0
    assert slow.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
    assert slow.failure_info.code == "TaskEnded"


def test_dependencies_wait_for_success_and_block_on_failure(client: BatchClient, pool: str) -> None:
    with pytest.raises(HttpResponseError) as refused:
        job_id = new_job(client, "nodeps", pool)
        dependent = m.BatchTaskCreateOptions(id="b", command_line="true", depends_on=after("a"))
        client.create_task(job_id, dependent)
    assert error_code(refused.value) == "TaskDependenciesNotSpecifiedOnJob"
    job_id = new_job(client, "deps", pool, uses_task_dependencies=True)
    client.create_tasks(job_id, [
        m.BatchTaskCreateOptions(id="last", depends_on=after("1", "2"), command_line="true"),
        m.BatchTaskCreateOptions(id="2", depends_on=after("1"), **shell("sleep 0.2")),
        m.BatchTaskCreateOptions(id="1", **shell("sleep 0.2")),
        m.BatchTaskCreateOptions(id="broken", command_line="false"),
        m.BatchTaskCreateOptions(id="blocked", depends_on=after("broken"), command_line="true"),
    ])
    first, second, last = (completed(client, job_id, task_id) for task_id in ("1", "2", "last"))
    assert second.execution_info.start_time >= first.execution_info.end_time
    assert last.execution_info.start_time >= second.execution_info.end_time
    assert completed(client, job_id, "broken").execution_info.exit_code == 1
    assert client.get_task(job_id, "blocked").state == m.BatchTaskState.ACTIVE


def test_properties_whose_behaviour_is_not_modelled_are_refused(client: BatchClient, pool: str) -> None:
    with pytest.raises(HttpResponseError) as on_failure:
        new_job(client, "exits", pool, task_failure_mode=m.BatchTaskFailureMode.PERFORM_EXIT_OPTIONS_JOB_ACTION)
    job_id = new_job(client, "refusals", pool, uses_task_dependencies=True)
    exits = m.ExitConditions(exit_codes=[m.ExitCodeMapping(code=3, exit_options=m.ExitOptions(
        dependency_action=m.DependencyAction.SATISFY))])
    ranges = m.BatchTaskDependencies(task_id_ranges=[m.BatchTaskIdRange(start=1, end=2)])
    result = client.create_task_collection(job_id, m.BatchTaskGroup(task_values=[
        m.BatchTaskCreateOptions(id="exits", command_line="true", exit_conditions=exits),
        m.BatchTaskCreateOptions(id="ranges", command_line="true", depends_on=ranges),
        m.BatchTaskCreateOptions(id="fine", command_line="true")]))
    codes = {r.task_id: (r.status, r.error.code if r.error else None) for r in result.result_values}
    assert codes == {"exits": (m.BatchTaskAddStatus.CLIENT_ERROR, "UnsupportedProperty"),
                     "ranges": (m.BatchTaskAddStatus.CLIENT_ERROR, "UnsupportedProperty"),
                     "fine": (m.BatchTaskAddStatus.SUCCESS, None)}
    assert on_failure.value.status_code == 400 and error_code(on_failure.value) == "UnsupportedProperty"


def test_job_manager_completion_ends_the_job(client: BatchClient, pool: str) -> None:
    manager = m.BatchJobManagerTask(id="manager", command_line="/bin/sh -c 'echo managing'")
    job_id = new_job(client, "managed", pool, job_manager_task=manager)
    assert completed(client, job_id, "manager").execution_info.exit_code == 0
    job = job_in_state(client, job_id, m.BatchJobState.COMPLETED)
    assert job.execution_info.termination_reason == "JMComplete"


def test_multi_instance_task_runs_coordination_on_every_node(client: BatchClient, pool: str) -> None:
    client.create_pool(pool_options("mpipool", 2, task_slots_per_node=1, enable_inter_node_communication=True))
    idle_nodes(client, "mpipool", 2)
    settings = m.MultiInstanceSettings(
        number_of_instances=2,
        coordination_command_line="/bin/sh -c 'echo $AZ_BATCH_NODE_ID > $AZ_BATCH_TASK_SHARED_DIR/coordinated.txt'",
    )
    script = ("echo $AZ_BATCH_HOST_LIST; echo $AZ_BATCH_IS_CURRENT_NODE_MASTER; "
              "cat $AZ_BATCH_TASK_SHARED_DIR/coordinated.txt")
    task_options = m.BatchTaskCreateOptions(id="allreduce", multi_instance_settings=settings, **shell(script))
    on_shared = new_job(client, "mpi-on-4-slots", pool)
    client.create_task(on_shared, task_options)  # Batch never schedules it on a pool with 4 slots per node
    job_id = new_job(client, "mpi", "mpipool")
    client.create_task(job_id, task_options)
    task = completed(client, job_id, "allreduce")
    assert task.execution_info.exit_code == 0 and task.required_slots == 1
    hosts, master, primary_node = task_file(client, job_id, "allreduce", "stdout.txt").decode().split()
    assert len(set(hosts.split(","))) == 2 and master == "true"
    assert primary_node == task.node_info.node_id
    other = next(node.id for node in client.list_nodes("mpipool") if node.id != primary_node)
    coordinated = b"".join(client.download_node_file("mpipool", other, f"{task.node_info.task_root_directory}/"
                                                                      "coordinated.txt"))
    assert coordinated.decode().strip() == other
    assert client.get_task(on_shared, "allreduce").state == m.BatchTaskState.ACTIVE
    client.begin_delete_job(on_shared, polling_interval=POLL).result()


def test_terminating_a_job_kills_its_task_process_tree(client: BatchClient, pool: str) -> None:
    job_id = new_job(client, "stopme", pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="sleeper", **shell("sleep 300 & echo $! > child.pid; wait")))

    def child_pid() -> int | None:
        try:
            text = task_file(client, job_id, "sleeper", "wd/child.pid").decode().strip()
        except HttpResponseError:
            return None
        return int(text) if text else None

    pid = wait_for(child_pid, "the sleeper's child pid")
    assert psutil.pid_exists(pid)
    with pytest.raises(ValueError):  # azure-batch 15.1.0 cannot send a terminate without a body...
        client.begin_terminate_job(job_id)
    with pytest.raises(ValueError):  # ...nor with empty options (an empty model is falsy)
        client.begin_terminate_job(job_id, BatchJobTerminateOptions())
    options = BatchJobTerminateOptions(termination_reason="cancelled by test")
    client.begin_terminate_job(job_id, options, polling_interval=POLL).result()
    job = client.get_job(job_id)
    assert job.state == m.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "cancelled by test"
    sleeper = completed(client, job_id, "sleeper")
    assert sleeper.execution_info.failure_info.code == "TaskEnded"
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             "the child process to die")


def test_job_terminates_once_switched_to_terminatejob(client: BatchClient, pool: str) -> None:
    job_id = new_job(client, "autoend", pool, all_tasks_complete_mode=m.BatchAllTasksCompleteMode.NO_ACTION)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="only", command_line="true"))
    completed(client, job_id, "only")
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE
    terminate_when_done = m.BatchJobUpdateOptions(all_tasks_complete_mode=m.BatchAllTasksCompleteMode.TERMINATE_JOB)
    client.update_job(job_id, terminate_when_done)
    job = job_in_state(client, job_id, m.BatchJobState.COMPLETED)
    assert job.execution_info.termination_reason == "AllTasksComplete"
    with pytest.raises(HttpResponseError) as closed:
        client.create_task(job_id, m.BatchTaskCreateOptions(id="late", command_line="true"))
    assert error_code(closed.value) == "JobCompleted"


def test_job_wall_clock_limit_terminates_the_job(client: BatchClient, pool: str) -> None:
    limit = m.BatchJobConstraints(max_wall_clock_time=timedelta(seconds=1))
    job_id = new_job(client, "deadline", pool, constraints=limit)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="forever", command_line="sleep 300"))
    job = job_in_state(client, job_id, m.BatchJobState.COMPLETED)
    assert job.execution_info.termination_reason == "MaxWallClockTimeExpiry"
    assert completed(client, job_id, "forever").execution_info.failure_info.code == "TaskEnded"


def test_task_terminate_and_job_delete(client: BatchClient, pool: str) -> None:
    job_id = new_job(client, "cleanup", pool)
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=name, command_line="sleep 300") for name in ("a", "b")])
    wait_for(lambda: client.get_task(job_id, "a").state == m.BatchTaskState.RUNNING, "task a to run")
    client.terminate_task(job_id, "a")
    assert completed(client, job_id, "a").execution_info.failure_info.code == "TaskEnded"
    with pytest.raises(HttpResponseError) as again:
        client.terminate_task(job_id, "a")
    assert again.value.status_code == 409 and error_code(again.value) == "TaskCompleted"
    client.begin_delete_job(job_id, polling_interval=POLL).result()
    with pytest.raises(ResourceNotFoundError) as deleted:
        client.get_job(job_id)
    assert error_code(deleted.value) == "JobNotFound"


def test_lists_page_with_next_links_and_apply_select(service: BatchService, client: BatchClient,
                                                     pool: str) -> None:
    job_id = new_job(client, "paging", pool)
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"p{i}", command_line="true") for i in range(5)])
    service.settings.max_page_size = 2
    service.clear_requests()
    try:
        selected = list(client.list_tasks(job_id, select=["id", "state"]))
    finally:
        service.settings.max_page_size = 1000
    assert [task.id for task in selected] == [f"p{i}" for i in range(5)]
    assert selected[0].command_line is None and selected[0].state is not None
    assert len(service.requests(method="GET", path=f"^/jobs/{job_id}/tasks$")) == 3


def test_operations_orch_never_uses_answer_with_batch_errors(service: BatchService, client: BatchClient,
                                                             pool: str) -> None:
    job_id = new_job(client, "unsupported", pool)
    attempts = {
        "filter": (lambda: list(client.list_tasks(job_id, filter="state eq 'active'")), 400,
                   "UnsupportedQueryParameter"),
        "maxresults": (lambda: list(client.list_jobs(max_results=2)), 400, "UnsupportedQueryParameter"),
        "if-match": (lambda: client.get_job(job_id, etag="0x1", match_condition=MatchConditions.IfNotModified), 400,
                     "UnsupportedHeader"),
        "task counts": (lambda: client.get_job_task_counts(job_id), 400, "InvalidUri"),
        "job disable": (lambda: client.begin_disable_job(job_id, m.BatchJobDisableOptions(disable_tasks="requeue")),
                        400, "InvalidUri"),
        "task delete": (lambda: client.delete_task(job_id, "none"), 405, "UnsupportedHttpVerb"),
    }
    for name, (attempt, status, code) in attempts.items():
        with pytest.raises(HttpResponseError) as refused:
            attempt()
        body = refused.value.response.json()
        assert (refused.value.status_code, body["code"]) == (status, code), name
        assert set(body) == {"odata.metadata", "code", "message", "values"} and body["message"]["lang"] == "en-US"
    with pytest.raises(HttpResponseError) as head:  # a HEAD answer has no body to carry the error
        client.pool_exists(pool)
    assert head.value.status_code == 405


def test_pack_fill_type_fills_one_node_first(client: BatchClient) -> None:
    policy = m.BatchTaskSchedulingPolicy(node_fill_type=m.BatchNodeFillType.PACK)
    client.create_pool(pool_options("packed", 2, task_slots_per_node=2, task_scheduling_policy=policy))
    idle_nodes(client, "packed", 2)
    job_id = new_job(client, "packjob", "packed")
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"s{i}", command_line="sleep 300") for i in range(3)])

    def placed() -> list[m.BatchTask] | None:
        tasks = [task for task in client.list_tasks(job_id) if task.state == m.BatchTaskState.RUNNING]
        return tasks if len(tasks) == 3 else None

    nodes = [task.node_info.node_id for task in wait_for(placed, "three running tasks")]
    assert sorted(nodes.count(node) for node in set(nodes)) == [1, 2]
    assert sorted(node.running_task_slots_count for node in client.list_nodes("packed")) == [1, 2]
    client.begin_delete_job(job_id, polling_interval=POLL).result()
    client.begin_delete_pool("packed", polling_interval=POLL).result()


def test_autoscale_formula_follows_pending_tasks(service: BatchService, client: BatchClient) -> None:
    def scaled_pool(pool_id: str, formula: str) -> m.BatchPoolCreateOptions:
        return m.BatchPoolCreateOptions(id=pool_id, vm_size="standard_d2s_v3", enable_auto_scale=True,
                                        virtual_machine_configuration=vm_config(), auto_scale_formula=formula,
                                        auto_scale_evaluation_interval=timedelta(minutes=5))

    with pytest.raises(HttpResponseError) as bad:
        client.create_pool(scaled_pool("broken", "$TargetDedicatedNodes = ;"))
    assert bad.value.status_code == 400 and error_code(bad.value) == "AutoScalingFormulaSyntaxError"
    with quick_autoscale(service.settings, 0.1):
        client.create_pool(scaled_pool("scaled", "$TargetDedicatedNodes = min(2, max(0, $PendingTasks.GetSample(1)));"))
        assert client.get_pool("scaled").target_dedicated_nodes == 0
        with pytest.raises(HttpResponseError) as manual:
            client.begin_resize_pool("scaled", m.BatchPoolResizeOptions(target_dedicated_nodes=1))
        assert manual.value.status_code == 409 and error_code(manual.value) == "OperationInvalidForCurrentState"
        job_id = new_job(client, "scaling", "scaled")
        client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"w{i}", command_line="sleep 300") for i in range(3)])
        wait_for(lambda: len(list(client.list_nodes("scaled"))) == 2, "the pool to grow to two nodes")
        pool = client.get_pool("scaled")
        assert pool.enable_auto_scale and pool.target_dedicated_nodes == 2
        assert "$TargetDedicatedNodes=2" in pool.auto_scale_run.results
        client.begin_delete_job(job_id, polling_interval=POLL).result()
    client.begin_delete_pool("scaled", polling_interval=POLL).result()


class QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output clean
        return


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server over a temporary directory (stands in for a blob SAS URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFileHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_resource_files_are_downloaded_and_failures_are_user_errors(client: BatchClient, pool: str,
                                                                     file_server: tuple[str, Path]) -> None:
    url, root = file_server
    (root / "input.csv").write_text("a,b\n1,2\n")
    job_id = new_job(client, "inputs", pool)
    client.create_tasks(job_id, [
        m.BatchTaskCreateOptions(id="reads", resource_files=[m.ResourceFile(http_url=f"{url}/input.csv",
                                                                            file_path="data/input.csv")],
                                 **shell("wc -l < data/input.csv")),
        m.BatchTaskCreateOptions(id="missing", resource_files=[m.ResourceFile(http_url=f"{url}/absent.csv",
                                                                              file_path="absent.csv")],
                                 command_line="true"),
    ])
    assert completed(client, job_id, "reads").execution_info.exit_code == 0
    assert task_file(client, job_id, "reads", "stdout.txt").strip() == b"2"
    missing = completed(client, job_id, "missing").execution_info
    assert missing.result == m.BatchTaskExecutionResult.FAILURE and missing.exit_code is None
    assert missing.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
    assert missing.failure_info.code == "BlobNotFound"


def test_throttling_and_server_errors_are_retried_by_the_sdk(service: BatchService, fast_retry_client: BatchClient,
                                                             pool: str) -> None:
    client = fast_retry_client
    service.clear_requests()
    service.inject_fault("429", method="GET", path=f"^/pools/{pool}$", count=1, retry_after=1)
    service.inject_fault("500", method="GET", path=f"^/pools/{pool}$", count=1)
    service.inject_fault("drop", method="GET", path=f"^/pools/{pool}$", count=1)
    try:
        assert client.get_pool(pool).id == pool
    finally:
        service.clear_faults()
    assert [(r.status, r.fault) for r in service.requests(path=f"^/pools/{pool}$")] == [
        (429, "429"), (500, "500"), (0, "drop"), (200, None)]
    service.inject_fault("429", path="^/jobs$", count=1, retry_after=7)
    try:
        with pytest.raises(urllib.error.HTTPError) as throttled:
            urllib.request.urlopen(f"{service.url}/jobs?api-version=2025-06-01")
    finally:
        service.clear_faults()
    assert throttled.value.code == 429 and throttled.value.headers["Retry-After"] == "7"
    assert json.loads(throttled.value.read())["code"] == "TooManyRequests"


def test_server_busy_surfaces_when_retries_are_off(service: BatchService, pool: str) -> None:
    no_retry = client_for(service, retry_total=0)
    service.inject_fault("503", path=f"^/pools/{pool}$", count=1)
    try:
        with pytest.raises(HttpResponseError) as busy:
            no_retry.get_pool(pool)
    finally:
        service.clear_faults()
    assert busy.value.status_code == 503 and error_code(busy.value) == "ServerBusy"


def test_failure_after_apply_makes_the_retry_see_task_exists(service: BatchService, fast_retry_client: BatchClient,
                                                             pool: str) -> None:
    client = fast_retry_client
    job_id = new_job(client, "replayed", pool)
    service.clear_requests()
    service.inject_fault("500", method="POST", path="/addtaskcollection$", count=1, timing="after")
    try:
        result = client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"r{i}", command_line="true")
                                              for i in range(3)])
    finally:
        service.clear_faults()
    assert [(r.status, r.fault) for r in service.requests(path="/addtaskcollection$")] == [(500, "500"), (200, None)]
    assert {r.task_id: r.error.code for r in result.result_values} == {f"r{i}": "TaskExists" for i in range(3)}
    assert len(list(client.list_tasks(job_id))) == 3


def test_dropped_post_is_not_retried_and_random_faults_are_seeded(service: BatchService,
                                                                  fast_retry_client: BatchClient, pool: str) -> None:
    client = fast_retry_client
    job_id = new_job(client, "dropped", pool)
    service.inject_fault("drop", method="POST", path="/addtaskcollection$", count=1, timing="after")
    try:
        with pytest.raises(ServiceResponseError):
            client.create_task_collection(job_id, m.BatchTaskGroup(task_values=[
                m.BatchTaskCreateOptions(id="x", command_line="true")]))
    finally:
        service.clear_faults()
    assert client.get_task(job_id, "x").id == "x"
    service.clear_requests()
    rule = service.inject_fault("503", method="GET", path=f"^/jobs/{job_id}$", probability=0.2, seed=11)
    try:
        for _ in range(30):
            assert client.get_job(job_id).id == job_id
    finally:
        service.clear_faults()
    statuses = [r.status for r in service.requests(path=f"^/jobs/{job_id}$")]
    assert statuses.count(503) == rule.fired > 0 and statuses.count(200) == 30


def admin(service: BatchService, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{service.url}/_admin/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def test_admin_http_api_manages_faults_and_reads_the_request_log(service: BatchService, client: BatchClient,
                                                                 pool: str) -> None:
    admin(service, "DELETE", "requests")
    rule = admin(service, "POST", "faults", {"kind": "503", "method": "GET", "path": "/nodes$", "count": 1})
    assert rule["kind"] == "503" and rule["fired"] == 0
    assert len(list(client.list_nodes(pool))) == 2
    log = admin(service, "GET", "requests?path=/nodes$")
    assert [(entry["status"], entry["fault"]) for entry in log["value"]] == [(503, "503"), (200, None)]
    assert admin(service, "GET", "faults")["value"][0]["fired"] == 1
    admin(service, "DELETE", "faults")
    assert admin(service, "GET", "faults")["value"] == []
    settings = admin(service, "POST", "settings", {"allocation_delay_s": 0.05})
    assert settings["max_body_bytes"] == 999_999 and settings["account_features"] == []
    assert admin(service, "POST", "settings", {"account_features": ["maxParallelTasks"]})["account_features"] == [
        "maxParallelTasks"]
    assert service.settings.account_features == {"maxParallelTasks"}
    with pytest.raises(urllib.error.HTTPError) as unknown:
        admin(service, "POST", "settings", {"account_features": ["gpuQuota"]})
    assert unknown.value.code == 400
    admin(service, "POST", "settings", {"account_features": []})


@pytest.mark.slow
def test_module_entry_point_serves_until_terminated(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "tests.batch_service", "--root", str(tmp_path)],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        client = BatchClient(info["url"], AzureNamedKeyCredential(info["account"], info["key"]))
        assert list(client.list_pools()) == []
        with urllib.request.urlopen(f"{info['url']}/_admin/requests") as response:
            assert json.loads(response.read())["count"] == 1
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0



class _StaticToken:
    """A ``TokenCredential`` handing out one fixed bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, 4_000_000_000)


def test_https_and_a_job_token_that_reaches_only_its_own_job(tmp_path: Path) -> None:
    tls = self_signed_cert(tmp_path / "tls")
    token_account = ServiceSettings(account_features=frozenset({"authenticationTokenSettings"}))
    with start_batch_service(tmp_path / "batch", tls=tls, settings=token_account) as secure:
        assert secure.url.startswith("https://")
        admin = client_for(secure, connection_verify=str(tls.cert))
        admin.create_pool(pool_options("tokpool", 1))
        idle_nodes(admin, "tokpool", 1)
        new_job(admin, "other", "tokpool")
        manager = m.BatchJobManagerTask(id="jm", kill_job_on_completion=False, **shell(
            "echo $AZ_BATCH_AUTHENTICATION_TOKEN; echo $AZ_BATCH_ACCOUNT_URL"))
        manager["authenticationTokenSettings"] = {"access": ["job"]}
        new_job(admin, "owned", "tokpool", job_manager_task=manager)
        completed(admin, "owned", "jm")
        token, account_url = task_file(admin, "owned", "jm", "stdout.txt").decode().split()
        assert account_url == secure.url and admin.get_job("owned").state == m.BatchJobState.ACTIVE
        scoped = BatchClient(account_url, _StaticToken(token), connection_verify=str(tls.cert))
        assert scoped.get_job("owned").id == "owned" and [t.id for t in scoped.list_tasks("owned")] == ["jm"]
        scoped.create_task("owned", m.BatchTaskCreateOptions(id="added", **shell("true")))
        for refused in (lambda: scoped.get_job("other"), lambda: list(scoped.list_pools())):
            with pytest.raises(HttpResponseError) as caught:
                refused()
            assert caught.value.status_code == 403 and error_code(caught.value) == "AuthenticationFailed"
        forged = BatchClient(account_url, _StaticToken("forged"), connection_verify=str(tls.cert))
        with pytest.raises(HttpResponseError):
            forged.get_job("owned")


# -- the rules of Batch's REST reference (2025-06-01) for every field orch sends ------------------------------------
IMAGE = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server"}
GALLERY = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal/images/img/versions/1.0.0"
POOL_BODY = {"id": "rules", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": 0,
             "virtualMachineConfiguration": {"imageReference": IMAGE, "nodeAgentSKUId": "batch.node.ubuntu 24.04"}}
JOB_BODY = {"id": "rulesjob", "poolInfo": {"poolId": "shared"}}
TASK_BODY = {"id": "t", "commandLine": "true"}
CONTAINER = {"type": "dockerCompatible", "containerImageNames": ["r.io/img:1"]}
OUTPUT = {"filePattern": "*.txt", "destination": {"container": {"containerUrl": "http://blob/c?sig"}},
          "uploadOptions": {"uploadCondition": "taskcompletion"}}
MULTI = {"numberOfInstances": 2, "coordinationCommandLine": "true"}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with dotted keys set (``a__b`` for ``a.b``; a None value deletes)."""
    body = json.loads(json.dumps(base))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = body
        for name in parents:
            target = target.setdefault(name, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return body


def vm(**changes: Any) -> dict[str, Any]:
    return changed(POOL_BODY["virtualMachineConfiguration"], **changes)


def refusal(client: BatchClient, service: BatchService, method: str, path: str, body: Any) -> dict[str, Any]:
    """The error body of a request Batch must refuse (asserting it is refused and shaped like Batch's)."""
    request = HttpRequest(method, f"{service.url}{path}?api-version=2025-06-01", json=body)
    with pytest.raises(HttpResponseError) as refused:
        client.send_request(request)
    answer = refused.value.response.json()
    assert set(answer) <= {"odata.metadata", "code", "message", "values"} and answer["message"]["lang"] == "en-US"
    return {"status": refused.value.status_code, "code": answer["code"],
            **{item["key"]: item["value"] for item in answer.get("values", [])}}


POOL_RULES = [  # (what, body, status, code, property)
    ("unknown property", changed(POOL_BODY, vmSizes="x"), 400, "InvalidRequestBody", "vmSizes"),
    ("read-only property", changed(POOL_BODY, virtualMachineConfiguration=vm(imageReference__exactVersion="1")), 400,
     "InvalidRequestBody", "virtualMachineConfiguration.imageReference.exactVersion"),
    ("integer as string", changed(POOL_BODY, targetDedicatedNodes="2"), 400, "InvalidRequestBody",
     "targetDedicatedNodes"),
    ("boolean as string", changed(POOL_BODY, enableInterNodeCommunication="yes"), 400, "InvalidRequestBody",
     "enableInterNodeCommunication"),
    ("vmSize missing", changed(POOL_BODY, vmSize=None), 400, "MissingRequiredProperty", "vmSize"),
    ("node agent missing", changed(POOL_BODY, virtualMachineConfiguration=vm(nodeAgentSKUId=None)), 400,
     "MissingRequiredProperty", "virtualMachineConfiguration.nodeAgentSKUId"),
    ("id over 64", changed(POOL_BODY, id="p" * 65), 400, "InvalidPropertyValue", "id"),
    ("id with a dot", changed(POOL_BODY, id="my.pool"), 400, "InvalidPropertyValue", "id"),
    ("slots over 4 per core", changed(POOL_BODY, taskSlotsPerNode=9), 400, "InvalidPropertyValue", "taskSlotsPerNode"),
    ("slots over 256", changed(POOL_BODY, vmSize="Standard_HB120rs_v3", taskSlotsPerNode=257), 400,
     "InvalidPropertyValue", "taskSlotsPerNode"),
    ("not a VM size", changed(POOL_BODY, vmSize="big"), 400, "InvalidPropertyValue", "vmSize"),
    ("resize timeout under 5m", changed(POOL_BODY, resizeTimeout="PT4M"), 400, "InvalidPropertyValue",
     "resizeTimeout"),
    ("duration not ISO-8601", changed(POOL_BODY, resizeTimeout="15 minutes"), 400, "InvalidPropertyValue",
     "resizeTimeout"),
    ("no target and no autoscale", changed(POOL_BODY, targetDedicatedNodes=None), 400, "MissingRequiredProperty",
     "targetDedicatedNodes"),
    ("formula without autoscale", changed(POOL_BODY, autoScaleFormula="$TargetDedicatedNodes = 1;"), 400,
     "InvalidPropertyValue", "autoScaleFormula"),
    ("autoscale with a target", changed(POOL_BODY, enableAutoScale=True, autoScaleFormula="$TargetDedicatedNodes=0;"),
     400, "InvalidPropertyValue", "targetDedicatedNodes"),
    ("autoscale without formula", changed(POOL_BODY, enableAutoScale=True, targetDedicatedNodes=None), 400,
     "MissingRequiredProperty", "autoScaleFormula"),
    ("autoscale interval under 5m", changed(POOL_BODY, enableAutoScale=True, targetDedicatedNodes=None,
                                            autoScaleFormula="$TargetDedicatedNodes=0;",
                                            autoScaleEvaluationInterval="PT1M"),
     400, "InvalidPropertyValue", "autoScaleEvaluationInterval"),
    ("gallery image and marketplace", changed(POOL_BODY, virtualMachineConfiguration=vm(
        imageReference={**IMAGE, "virtualMachineImageId": GALLERY})), 400, "InvalidPropertyValue",
     "virtualMachineConfiguration.imageReference.virtualMachineImageId"),
    ("managed image", changed(POOL_BODY, virtualMachineConfiguration=vm(imageReference={
        "virtualMachineImageId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/old"})), 400,
     "InvalidPropertyValue", "virtualMachineConfiguration.imageReference.virtualMachineImageId"),
    ("marketplace without sku", changed(POOL_BODY, virtualMachineConfiguration=vm(imageReference__sku=None)), 400,
     "MissingRequiredProperty", "virtualMachineConfiguration.imageReference.sku"),
    ("retired node agent", changed(POOL_BODY, virtualMachineConfiguration=vm(nodeAgentSKUId="batch.node.ubuntu 20.04")),
     400, "InvalidPropertyValue", "virtualMachineConfiguration.nodeAgentSKUId"),
    ("container type missing", changed(POOL_BODY, virtualMachineConfiguration=vm(containerConfiguration={
        "containerImageNames": ["a"]})), 400, "MissingRequiredProperty",
     "virtualMachineConfiguration.containerConfiguration.type"),
    ("container type unknown", changed(POOL_BODY, virtualMachineConfiguration=vm(containerConfiguration={
        "type": "docker"})), 400, "InvalidPropertyValue", "virtualMachineConfiguration.containerConfiguration.type"),
    ("registry login without password", changed(POOL_BODY, virtualMachineConfiguration=vm(containerConfiguration={
        **CONTAINER, "containerRegistries": [{"registryServer": "r.io", "username": "u"}]})), 400,
     "MissingRequiredProperty", "virtualMachineConfiguration.containerConfiguration.containerRegistries[0].password"),
    ("node fill unknown", changed(POOL_BODY, taskSchedulingPolicy={"nodeFillType": "fill"}), 400,
     "InvalidPropertyValue", "taskSchedulingPolicy.nodeFillType"),
    ("start task without command", changed(POOL_BODY, startTask={"waitForSuccess": True}), 400,
     "MissingRequiredProperty", "startTask.commandLine"),
    ("user name and auto user", changed(POOL_BODY, startTask={"commandLine": "true", "userIdentity": {
        "username": "u", "autoUser": {"elevationLevel": "admin"}}}), 400, "InvalidPropertyValue",
     "startTask.userIdentity"),
    ("elevation unknown", changed(POOL_BODY, startTask={"commandLine": "true", "userIdentity": {
        "autoUser": {"elevationLevel": "root"}}}), 400, "InvalidPropertyValue",
     "startTask.userIdentity.autoUser.elevationLevel"),
    ("metadata without value", changed(POOL_BODY, metadata=[{"name": "a"}]), 400, "MissingRequiredProperty",
     "metadata[0].value"),
    ("property not modelled", changed(POOL_BODY, mountConfiguration=[{}]), 400, "UnsupportedProperty",
     "mountConfiguration"),
]


@pytest.mark.parametrize("what, body, status, code, name", POOL_RULES, ids=[rule[0] for rule in POOL_RULES])
def test_pool_create_refuses_what_the_reference_rules_out(service: BatchService, client: BatchClient, what: str,
                                                         body: dict[str, Any], status: int, code: str,
                                                         name: str) -> None:
    answer = refusal(client, service, "POST", "/pools", body)
    assert (answer["status"], answer["code"], answer.get("PropertyName")) == (status, code, name)


JOB_RULES = [
    ("unknown property", changed(JOB_BODY, maxParallelTask=2), 400, "InvalidRequestBody", "maxParallelTask"),
    ("maxParallelTasks on a default account", changed(JOB_BODY, maxParallelTasks=2), 403, "Forbidden", None),
    ("-1 is still maxParallelTasks", changed(JOB_BODY, maxParallelTasks=-1), 403, "Forbidden", None),
    ("task preemption on a default account", changed(JOB_BODY, allowTaskPreemption=True), 403, "Forbidden", None),
    ("completion action unknown", changed(JOB_BODY, onAllTasksComplete="done"), 400, "InvalidPropertyValue",
     "onAllTasksComplete"),
    ("priority out of range", changed(JOB_BODY, priority=5000), 400, "InvalidPropertyValue", "priority"),
    ("wall clock not ISO-8601", changed(JOB_BODY, constraints={"maxWallClockTime": "1h"}), 400,
     "InvalidPropertyValue", "constraints.maxWallClockTime"),
    ("no pool info", changed(JOB_BODY, poolInfo=None), 400, "MissingRequiredProperty", "poolInfo"),
    ("pool info without pool", changed(JOB_BODY, poolInfo={}), 400, "MissingRequiredProperty", "poolInfo.poolId"),
    ("auto pool", changed(JOB_BODY, poolInfo={"autoPoolSpecification": {}}), 400, "UnsupportedProperty",
     "poolInfo.autoPoolSpecification"),
    ("job manager token on a default account", changed(JOB_BODY, jobManagerTask={
        **TASK_BODY, "authenticationTokenSettings": {"access": ["job"]}}), 403, "Forbidden", None),
    ("job manager without command", changed(JOB_BODY, jobManagerTask={"id": "jm"}), 400, "MissingRequiredProperty",
     "jobManagerTask.commandLine"),
    ("job manager slots 0", changed(JOB_BODY, jobManagerTask={**TASK_BODY, "requiredSlots": 0}), 400,
     "InvalidPropertyValue", "jobManagerTask.requiredSlots"),
    ("job manager flag as string", changed(JOB_BODY, jobManagerTask={**TASK_BODY, "runExclusive": "false"}), 400,
     "InvalidRequestBody", "jobManagerTask.runExclusive"),
    ("job manager container on a plain pool", changed(JOB_BODY, jobManagerTask={
        **TASK_BODY, "containerSettings": {"imageName": "r.io/img:1"}}), 400, "InvalidPropertyValue",
     "jobManagerTask.containerSettings"),
]


@pytest.mark.parametrize("what, body, status, code, name", JOB_RULES, ids=[rule[0] for rule in JOB_RULES])
def test_job_create_refuses_what_the_reference_rules_out(service: BatchService, client: BatchClient, pool: str,
                                                        what: str, body: dict[str, Any], status: int, code: str,
                                                        name: str | None) -> None:
    answer = refusal(client, service, "POST", "/jobs", body)
    assert (answer["status"], answer["code"], answer.get("PropertyName")) == (status, code, name)
    if code == "Forbidden":
        assert answer["Reason"].startswith("Property ") and answer["Reason"].endswith("not enabled for current account")


RESOURCE = {"httpUrl": "http://blob/c/f?sig", "filePath": "f"}
TASK_RULES = [
    ("unknown property", changed(TASK_BODY, comandLine="x"), 400, "InvalidRequestBody", "comandLine"),
    ("command missing", changed(TASK_BODY, commandLine=None), 400, "MissingRequiredProperty", "commandLine"),
    ("id over 64", changed(TASK_BODY, id="t" * 65), 400, "InvalidPropertyValue", "id"),
    ("slots as string", changed(TASK_BODY, requiredSlots="2"), 400, "InvalidRequestBody", "requiredSlots"),
    ("wall clock not ISO-8601", changed(TASK_BODY, constraints={"maxWallClockTime": "10m"}), 400,
     "InvalidPropertyValue", "constraints.maxWallClockTime"),
    ("retries below -1", changed(TASK_BODY, constraints={"maxTaskRetryCount": -2}), 400, "InvalidPropertyValue",
     "constraints.maxTaskRetryCount"),
    ("environment without name", changed(TASK_BODY, environmentSettings=[{"value": "1"}]), 400,
     "MissingRequiredProperty", "environmentSettings[0].name"),
    ("two resource sources", changed(TASK_BODY, resourceFiles=[{**RESOURCE, "storageContainerUrl": "http://blob/c"}]),
     400, "InvalidPropertyValue", "resourceFiles[0].httpUrl"),
    ("no resource source", changed(TASK_BODY, resourceFiles=[{"filePath": "f"}]), 400, "InvalidPropertyValue",
     "resourceFiles[0].httpUrl"),
    ("http file without path", changed(TASK_BODY, resourceFiles=[{"httpUrl": "http://blob/c/f"}]), 400,
     "MissingRequiredProperty", "resourceFiles[0].filePath"),
    ("blob prefix on a file", changed(TASK_BODY, resourceFiles=[{**RESOURCE, "blobPrefix": "x/"}]), 400,
     "InvalidPropertyValue", "resourceFiles[0].blobPrefix"),
    ("path leaving the task dir", changed(TASK_BODY, resourceFiles=[{**RESOURCE, "filePath": "../f"}]), 400,
     "InvalidPropertyValue", "resourceFiles[0].filePath"),
    ("file mode not octal", changed(TASK_BODY, resourceFiles=[{**RESOURCE, "fileMode": "rwx"}]), 400,
     "InvalidPropertyValue", "resourceFiles[0].fileMode"),
    ("container URL not http", changed(TASK_BODY, resourceFiles=[{"storageContainerUrl": "ftp://blob/c"}]), 400,
     "InvalidPropertyValue", "resourceFiles[0].storageContainerUrl"),
    ("output without options", changed(TASK_BODY, outputFiles=[changed(OUTPUT, uploadOptions=None)]), 400,
     "MissingRequiredProperty", "outputFiles[0].uploadOptions"),
    ("upload condition unknown", changed(TASK_BODY, outputFiles=[changed(OUTPUT, uploadOptions__uploadCondition="x")]),
     400, "InvalidPropertyValue", "outputFiles[0].uploadOptions.uploadCondition"),
    ("output without container URL", changed(TASK_BODY, outputFiles=[changed(OUTPUT, destination__container={})]),
     400, "MissingRequiredProperty", "outputFiles[0].destination.container.containerUrl"),
    ("multi-instance with 2 slots", changed(TASK_BODY, requiredSlots=2, multiInstanceSettings=MULTI), 400,
     "InvalidPropertyValue", "requiredSlots"),
    ("multi-instance without coordination", changed(TASK_BODY, multiInstanceSettings={"numberOfInstances": 2}), 400,
     "MissingRequiredProperty", "multiInstanceSettings.coordinationCommandLine"),
    ("zero instances", changed(TASK_BODY, multiInstanceSettings={**MULTI, "numberOfInstances": 0}), 400,
     "InvalidPropertyValue", "multiInstanceSettings.numberOfInstances"),
    ("container on a plain pool", changed(TASK_BODY, containerSettings={"imageName": "r.io/img:1"}), 400,
     "InvalidPropertyValue", "containerSettings"),
    ("container working dir unknown", changed(TASK_BODY, containerSettings={"imageName": "i", "workingDirectory": "h"}),
     400, "InvalidPropertyValue", "containerSettings.workingDirectory"),
    ("auto user scope unknown", changed(TASK_BODY, userIdentity={"autoUser": {"scope": "node"}}), 400,
     "InvalidPropertyValue", "userIdentity.autoUser.scope"),
    ("dependencies on a job without them", changed(TASK_BODY, dependsOn={"taskIds": ["a"]}), 400,
     "TaskDependenciesNotSpecifiedOnJob", None),
    ("token on a default account", changed(TASK_BODY, authenticationTokenSettings={"access": ["job"]}), 403,
     "Forbidden", None),
]


@pytest.fixture(scope="module")
def rules_job(client: BatchClient, pool: str) -> str:
    return new_job(client, "rulesjob", pool)


@pytest.mark.parametrize("what, body, status, code, name", TASK_RULES, ids=[rule[0] for rule in TASK_RULES])
def test_task_add_refuses_what_the_reference_rules_out(service: BatchService, client: BatchClient, rules_job: str,
                                                       what: str, body: dict[str, Any], status: int, code: str,
                                                       name: str | None) -> None:
    answer = refusal(client, service, "POST", f"/jobs/{rules_job}/tasks", body)
    assert (answer["status"], answer["code"], answer.get("PropertyName")) == (status, code, name)
    collection = client.send_request(HttpRequest("POST", f"{service.url}/jobs/{rules_job}/addtaskcollection"
                                                 f"?api-version=2025-06-01", json={"value": [body]}))
    result = collection.json()["value"][0]  # the same refusal, as the task's own result
    assert (result["status"], result["error"]["code"]) == ("clienterror", code)



def test_job_update_terminate_and_resize_bodies_follow_the_reference(service: BatchService, client: BatchClient,
                                                                     pool: str) -> None:
    job_id = new_job(client, "patched", pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="busy", command_line="sleep 300"))
    client.update_job(job_id, m.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    path = f"/jobs/{job_id}"
    for body, status, code, name in [
        ({"onAllTasksComplete": "noaction"}, 400, "InvalidPropertyValue", "onAllTasksComplete"),  # no way back
        ({"poolInfo": {"poolId": "other"}}, 409, "OperationInvalidForCurrentState", None),  # only when disabled
        ({"maxParallelTasks": 3}, 403, "Forbidden", None),
        ({"priorty": 1}, 400, "InvalidRequestBody", "priorty"),
    ]:
        answer = refusal(client, service, "PATCH", path, body)
        assert (answer["status"], answer["code"], answer.get("PropertyName")) == (status, code, name), body
    answer = refusal(client, service, "POST", f"{path}/terminate", {"reason": "x"})
    assert (answer["code"], answer["PropertyName"]) == ("InvalidRequestBody", "reason")
    for body, name in [({"targetDedicatedNodes": 1, "nodeDeallocationOption": "later"}, "nodeDeallocationOption"),
                       ({"targetDedicatedNodes": 1, "resizeTimeout": "PT1M"}, "resizeTimeout")]:
        answer = refusal(client, service, "POST", f"/pools/{pool}/resize", body)
        assert (answer["status"], answer["code"], answer["PropertyName"]) == (400, "InvalidPropertyValue", name)
    client.begin_delete_job(job_id, polling_interval=POLL).result()


def test_task_collections_are_bounded_and_ids_are_case_insensitive(service: BatchService, client: BatchClient,
                                                                     pool: str) -> None:
    collection = f"/jobs/{new_job(client, 'casejob', pool)}/addtaskcollection"
    answer = refusal(client, service, "POST", collection, {"value": [TASK_BODY, changed(TASK_BODY, id="T")]})
    assert (answer["code"], answer["PropertyName"]) == ("InvalidPropertyValue", "value")  # 't' and 'T' are one id
    assert refusal(client, service, "POST", collection, {})["code"] == "MissingRequiredProperty"
    assert refusal(client, service, "POST", collection, {"value": TASK_BODY})["code"] == "InvalidRequestBody"
    client.create_task("casejob", m.BatchTaskCreateOptions(id="Eval", command_line="true"))
    result = client.create_task_collection("casejob", m.BatchTaskGroup(task_values=[
        m.BatchTaskCreateOptions(id="eval", command_line="true")]))
    assert result.result_values[0].error.code == "TaskExists"
    with pytest.raises(ResourceExistsError) as job_exists:
        new_job(client, "CASEJOB", pool)
    assert error_code(job_exists.value) == "JobExists"
    with pytest.raises(ResourceExistsError) as pool_exists:
        client.create_pool(pool_options(pool.upper(), 1))
    assert error_code(pool_exists.value) == "PoolExists"
    big = [{"id": f"b{i}", "commandLine": "true", "environmentSettings": [{"name": "PAD", "value": "x" * 9_910}]}
           for i in range(100)]  # just over 10^6 bytes: Batch wants a collection under 1 MB
    assert len(json.dumps({"value": big})) >= 1_000_000
    assert refusal(client, service, "POST", collection, {"value": big})["status"] == 413
    assert client.send_request(HttpRequest("POST", f"{service.url}{collection}?api-version=2025-06-01",
                                           json={"value": big[:99]})).status_code == 200


def test_account_features_are_refused_until_enabled_then_honoured(service: BatchService, client: BatchClient,
                                                                  pool: str) -> None:
    limited = m.BatchJobCreateOptions(id="limited", pool_info=m.BatchPoolInfo(pool_id=pool), max_parallel_tasks=1)
    with pytest.raises(HttpResponseError) as refused:
        client.create_job(limited)
    assert refused.value.status_code == 403 and error_code(refused.value) == "Forbidden"
    service.settings.account_features = frozenset({"maxParallelTasks"})
    try:
        client.create_job(limited)
        zero = m.BatchJobCreateOptions(id="zero", pool_info=m.BatchPoolInfo(pool_id=pool), max_parallel_tasks=0)
        with pytest.raises(HttpResponseError) as invalid:
            client.create_job(zero)
        assert invalid.value.status_code == 400 and error_code(invalid.value) == "InvalidPropertyValue"
    finally:
        service.settings.account_features = frozenset()
    client.create_tasks("limited", [m.BatchTaskCreateOptions(id=f"s{i}", command_line="sleep 0.5") for i in range(3)])
    spans = sorted((t.execution_info.start_time, t.execution_info.end_time)
                   for t in (completed(client, "limited", f"s{i}") for i in range(3)))
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))  # one at a time
    assert client.get_job("limited").max_parallel_tasks == 1


def test_container_pools_need_container_settings_on_every_task(service: BatchService, client: BatchClient) -> None:
    registry = m.ContainerRegistryReference(registry_server="r.io", username="bot", password="secret")
    config = vm_config()
    config.container_configuration = m.BatchContainerConfiguration(
        type="dockerCompatible", container_image_names=["r.io/train:1"], container_registries=[registry])
    client.create_pool(m.BatchPoolCreateOptions(id="boxed", vm_size="standard_d2s_v3", target_dedicated_nodes=1,
                                                virtual_machine_configuration=config))
    idle_nodes(client, "boxed", 1)
    plain = m.BatchJobManagerTask(id="jm", command_line="true")
    with pytest.raises(HttpResponseError) as manager:
        new_job(client, "boxedjob", "boxed", job_manager_task=plain)
    assert (error_code(manager.value), manager.value.response.json()["values"][0]["value"]) == (
        "MissingRequiredProperty", "jobManagerTask.containerSettings")
    job_id = new_job(client, "boxedjob", "boxed")
    settings = m.BatchTaskContainerSettings(image_name="r.io/train:1", container_run_options="--rm",
                                            registry=registry, working_directory="taskWorkingDirectory")
    result = client.create_task_collection(job_id, m.BatchTaskGroup(task_values=[
        m.BatchTaskCreateOptions(id="bare", command_line="true"),
        m.BatchTaskCreateOptions(id="boxed", container_settings=settings, **shell("echo in $AZ_BATCH_TASK_ID"))]))
    codes = {r.task_id: r.error.code if r.error else None for r in result.result_values}
    assert codes == {"bare": "MissingRequiredProperty", "boxed": None}
    task = completed(client, job_id, "boxed")  # run on the host; the container settings are kept and reported
    assert task.execution_info.exit_code == 0 and task.container_settings.image_name == "r.io/train:1"
    assert task.execution_info.container_info.state == "exited"


def test_multi_instance_tasks_need_inter_node_communication(client: BatchClient) -> None:
    client.create_pool(pool_options("isolated", 2, task_slots_per_node=1))
    idle_nodes(client, "isolated", 2)
    job_id = new_job(client, "isolatedjob", "isolated")
    multi = m.MultiInstanceSettings(number_of_instances=2, coordination_command_line="true")
    client.create_task(job_id, m.BatchTaskCreateOptions(id="mpi", command_line="true", multi_instance_settings=multi))
    client.create_task(job_id, m.BatchTaskCreateOptions(id="single", command_line="true"))
    completed(client, job_id, "single")
    assert client.get_task(job_id, "mpi").state == m.BatchTaskState.ACTIVE  # never scheduled, as on Batch
