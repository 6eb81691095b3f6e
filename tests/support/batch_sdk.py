"""Small helpers for driving a local Batch service through the azure-batch SDK in tests."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from tests.batch_service import BatchService

POLL = 0.05  # seconds between SDK poller checks and wait_for probes
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}")


def client_for(service: BatchService, key: str | None = None, **kwargs: Any) -> BatchClient:
    """An SDK client for ``service`` (Shared Key; another ``key`` to test refusals)."""
    return BatchClient(service.url, AzureNamedKeyCredential(service.account, key or service.key), **kwargs)


def vm_config() -> m.VirtualMachineConfiguration:
    """A plausible Ubuntu VM configuration (the local service stores it; tasks run on the host)."""
    image = m.BatchVmImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server")
    return m.VirtualMachineConfiguration(image_reference=image, node_agent_sku_id="batch.node.ubuntu 24.04")


def pool_options(pool_id: str, nodes: int, **kwargs: Any) -> m.BatchPoolCreateOptions:
    """Create options of a pool with ``nodes`` dedicated nodes."""
    return m.BatchPoolCreateOptions(id=pool_id, vm_size="standard_d2s_v3", virtual_machine_configuration=vm_config(),
                                    target_dedicated_nodes=nodes, **kwargs)


def idle_nodes(client: BatchClient, pool_id: str, count: int) -> list[m.BatchNode]:
    """Wait until the pool has exactly ``count`` nodes, all idle; return them."""
    def probe() -> list[m.BatchNode] | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes if len(nodes) == count and all(n.state == m.BatchNodeState.IDLE for n in nodes) else None
    return wait_for(probe, f"{count} idle nodes in {pool_id}")


def new_job(client: BatchClient, job_id: str, pool_id: str, **kwargs: Any) -> str:
    """Create a job on ``pool_id``; returns its id."""
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), **kwargs))
    return job_id


def shell(script: str, **kwargs: Any) -> dict[str, Any]:
    """Task keyword arguments whose command line runs ``script`` (no single quotes) in /bin/sh."""
    return {"command_line": f"/bin/sh -c '{script}'", **kwargs}


def after(*task_ids: str) -> m.BatchTaskDependencies:
    """A ``dependsOn`` on the given task ids."""
    return m.BatchTaskDependencies(task_ids=list(task_ids))


def completed(client: BatchClient, job_id: str, task_id: str, timeout: float = 30.0) -> m.BatchTask:
    """Wait until the task is completed; return it."""
    def probe() -> m.BatchTask | None:
        task = client.get_task(job_id, task_id)
        return task if task.state == m.BatchTaskState.COMPLETED else None
    return wait_for(probe, f"task {job_id}/{task_id} to complete", timeout)


def job_in_state(client: BatchClient, job_id: str, state: m.BatchJobState) -> m.BatchJob:
    """Wait until the job reaches ``state``; return it."""
    def probe() -> m.BatchJob | None:
        job = client.get_job(job_id)
        return job if job.state == state else None
    return wait_for(probe, f"job {job_id} to be {state}")


def task_file(client: BatchClient, job_id: str, task_id: str, name: str, **kwargs: Any) -> bytes:
    """Contents of a task file (``ocp_range`` and other download options pass through)."""
    return b"".join(client.download_task_file(job_id, task_id, name, **kwargs))


def error_code(error: HttpResponseError) -> str | None:
    """The Batch error code the SDK parsed from an error response."""
    return error.error.code if error.error else None
