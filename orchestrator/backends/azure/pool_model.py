"""A ``PoolSpec`` as Batch's pool create body (azure-batch models): image, nodes or autoscale,
task slots, node fill, inter-node communication, containers and the start task."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.batch import models as m
from orchestrator.backends.azure import autostop, naming
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.spec import AzurePoolOptions, ContainerOptions
from orchestrator.backends.azure.task_model import environment, shell_command
from orchestrator.errors import AuthError
from orchestrator.spec.pool import PoolSpec

MIN_RESIZE_TIMEOUT = 300.0


COST_KEYS = ("idle_timeout", "autodelete", "price_per_node_hour", "max_spend")


def fingerprint(spec: PoolSpec) -> str:
    """A short hash of the spec without node counts (those change by resizing), without what
    is not the pool's own (the account's features: ``max_parallel_tasks``,
    ``task_authentication_tokens``) and without the cost settings (``COST_KEYS``: orch applies
    them to a pool as it is), kept in the pool's metadata to recognise "same pool" later."""
    exclude: dict[str, Any] = {"nodes": True, "azure": {"max_parallel_tasks", "task_authentication_tokens"},
                               **dict.fromkeys(COST_KEYS, True)}
    text = json.dumps(spec.model_dump(mode="json", exclude=exclude, exclude_none=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def azure_options(spec: PoolSpec) -> AzurePoolOptions:
    return spec.options(AzurePoolOptions)


def inter_node_communication(spec: PoolSpec) -> bool:
    """On when asked, or (``auto``) when a task may span nodes: the pool can have several."""
    return azure_options(spec).spans_nodes(spec.nodes.total)


def autoscale_formula(spec: PoolSpec) -> str | None:
    """The pool's own autoscale formula (``azure.autoscale``): the one given, or the named
    scenario's; None for fixed node counts (``autostop`` adds what ``idle_timeout`` needs).

    ``pending_tasks`` asks for as many nodes as the pending tasks need (by task slots), within
    the bounds (``(pending + slots - 1) / slots``: Batch truncates targets to whole nodes, and its
    formula language has no ``ceil``). With Spot (``low_priority``) nodes it keeps that Spot
    target, which Batch seeks again after preemptions, and covers Spot nodes preempted in every
    sample of the last ``replace_preempted_after`` with as many dedicated nodes
    (``$PreemptedNodeCount``, as in Batch's autoscale documentation), never more than the nodes
    wanted: preempted nodes are not billed, so the pool never pays for more nodes than it asked
    for. A new pool has no samples yet and starts with no dedicated nodes. Dedicated nodes leave
    once Spot capacity is back and their tasks end (``taskcompletion``).
    """
    scale = azure_options(spec).autoscale
    if scale is None:
        return None
    if scale.formula is not None:
        return scale.formula
    slots = spec.slots_per_node
    lines = ["percent = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 3);",
             "pending = percent < 70 ? max(0, $PendingTasks.GetSample(1)) : "
             "max(0, $PendingTasks.GetSample(TimeInterval_Minute * 3));",
             f"wanted = max({scale.min_nodes}, min({scale.max_nodes}, (pending + {slots - 1}) / {slots}));"]
    if scale.low_priority:
        window = max(1, round(scale.replace_preempted_after))
        lines += ["$TargetLowPriorityNodes = wanted;",
                  f"preempted = $PreemptedNodeCount.GetSample({window} * TimeInterval_Second);",
                  "$TargetDedicatedNodes = len(preempted) > 0 ? min(wanted, preempted) : 0;"]
    else:
        lines.append("$TargetDedicatedNodes = wanted;")
    return "\n".join(lines + ["$NodeDeallocationOption = taskcompletion;"])


def pool_formula(spec: PoolSpec, wake: datetime) -> str | None:
    """Everything Batch evaluates for the pool: its autoscale and its autostop (``autostop``)."""
    return autostop.formula(spec, autoscale_formula(spec), wake)


def evaluation_interval(spec: PoolSpec) -> float:
    """How often Batch evaluates the pool's formula: its autoscale's interval, else Batch's shortest."""
    scale = azure_options(spec).autoscale
    return scale.interval if scale is not None else autostop.FIXED_INTERVAL


def pool_create_options(spec: PoolSpec, credentials: Credentials,
                        wake: datetime | None = None) -> m.BatchPoolCreateOptions:
    """The create body; an autoscale or autostop pool gets its formula, woken at ``wake`` (now)."""
    options = azure_options(spec)
    formula = pool_formula(spec, wake or datetime.now(timezone.utc))
    scaling: dict[str, Any] = (
        {"enable_auto_scale": True, "auto_scale_formula": formula,
         "auto_scale_evaluation_interval": timedelta(seconds=evaluation_interval(spec))}
        if formula else
        {"target_dedicated_nodes": spec.nodes.dedicated, "target_low_priority_nodes": spec.nodes.low_priority,
         "resize_timeout": timedelta(seconds=max(MIN_RESIZE_TIMEOUT, options.allocation_timeout))})
    return m.BatchPoolCreateOptions(
        id=spec.id,
        vm_size=options.vm_size,
        virtual_machine_configuration=vm_configuration(options, credentials),
        task_slots_per_node=spec.slots_per_node,
        task_scheduling_policy=m.BatchTaskSchedulingPolicy(node_fill_type=options.node_fill),
        enable_inter_node_communication=inter_node_communication(spec),
        start_task=start_task(spec, options),
        metadata=[m.BatchMetadataItem(name=naming.METADATA_MARK, value="1"),
                  m.BatchMetadataItem(name=naming.METADATA_SPEC, value=fingerprint(spec))],
        **scaling,
    )


def vm_configuration(options: AzurePoolOptions, credentials: Credentials) -> m.VirtualMachineConfiguration:
    if options.custom_image is not None:
        image = m.BatchVmImageReference(virtual_machine_image_id=options.custom_image.id)
        agent = options.custom_image.node_agent_sku_id
    else:
        market = options.marketplace_image()
        image = m.BatchVmImageReference(publisher=market.publisher, offer=market.offer, sku=market.sku,
                                        version=market.version)
        agent = market.node_agent_sku_id
    containers = container_configuration(options.container, credentials) if options.container else None
    return m.VirtualMachineConfiguration(image_reference=image, node_agent_sku_id=agent,
                                         container_configuration=containers)


def container_configuration(container: ContainerOptions, credentials: Credentials) -> m.BatchContainerConfiguration:
    return m.BatchContainerConfiguration(type="dockerCompatible", container_image_names=list(container.images),
                                         container_registries=registries(container, credentials) or None)


def registries(container: ContainerOptions, credentials: Credentials) -> list[m.ContainerRegistryReference]:
    """Registry logins, their passwords looked up by name in credentials.yaml."""
    out = []
    for ref in container.registries:
        login = credentials.registries.get(ref.credentials)
        if login is None:
            raise AuthError(f"pool names registry credentials {ref.credentials!r}, which credentials.yaml lacks",
                            hint=f"add `registries: {{{ref.credentials}: {{username, password}}}}` "
                                 f"to {credentials.source}")
        out.append(m.ContainerRegistryReference(registry_server=ref.server, username=login.username,
                                                password=login.password.get_secret_value()))
    return out


def task_container_settings(spec: PoolSpec, credentials: Credentials) -> m.BatchTaskContainerSettings | None:
    """How tasks of a container pool run: the task image, with its registry's login if it has one."""
    container = azure_options(spec).container
    if container is None:
        return None
    image = container.image_for_tasks
    registry = next((r for r in registries(container, credentials)
                     if image.startswith(str(r.registry_server).rstrip("/") + "/")), None)
    return m.BatchTaskContainerSettings(image_name=image, container_run_options=container.run_options or None,
                                        registry=registry, working_directory="taskWorkingDirectory")


def start_task(spec: PoolSpec, options: AzurePoolOptions) -> m.BatchStartTask | None:
    """The pool's start task, run as the pool's admin user (installs usually need it)."""
    task = spec.start_task
    if task is None:
        return None
    admin = m.UserIdentity(auto_user=m.AutoUserSpecification(scope="pool", elevation_level="admin"))
    return m.BatchStartTask(command_line=shell_command(task.command),
                            environment_settings=environment({**spec.env, **task.env}),
                            wait_for_success=task.wait_for_success, max_task_retry_count=task.max_retries,
                            user_identity=admin)
