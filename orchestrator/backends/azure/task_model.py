"""A ``TaskLaunch`` as a Batch task: command line, environment, limits, dependencies, files.

Batch runs command lines without a shell, so every task runs ``/bin/sh -c '<script>'``: the
script exports ``ORCH_TASK_DIR`` (the task's working directory), ``ORCH_METRICS_FILE`` (inside
it), ``ORCH_CHECKPOINT_DIR`` (``checkpoint`` in the task directory, beside the working directory)
and ``ORCH_TASK_ATTEMPT``, unpacks the workdir snapshot when there is one, then ``exec``s the
user's command: a shell string through its own ``/bin/sh -c``, a list shell-quoted word by word.
Where the job has storage, the command runs under the checkpoint helper (``node_checkpoint``,
a resource file), which restores ``ORCH_CHECKPOINT_DIR`` first and saves it while the command runs
and when it exits; a node without Python 3 runs the command without it, saying so on stderr.
Multi-instance tasks take their command lines from ``launch_batch``; their primary runs the
helper (rank 0 of a launcher runs there, so it is the rank that saves and restores).
"""
from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping, Sequence

from azure.batch import models as m
from orchestrator.backends.azure import vm_sizes
from orchestrator.backends.azure.launch_commands import (
    coordination_command,
    multi_instance_command,
)
from orchestrator.model import TaskLaunch

WORKDIR_ZIP = ".orch-workdir.zip"
METRICS_NAME = "metrics.jsonl"
PARAMS_ENV = "ORCH_TRIAL_PARAMS"  # a trial's parameters as JSON, so a sweep manager can read them back
CHECKPOINT_HELPER = ".orch-checkpoint.py"
CHECKPOINT_URL_ENV = "ORCH_CHECKPOINT_URL"  # the task's checkpoint blob (SAS); the helper takes it out of the env
_UNPACK = ('if command -v unzip >/dev/null 2>&1; then unzip -qo "{zip}" -d "$ORCH_TASK_DIR"; '
           'else python3 -m zipfile -e "{zip}" "$ORCH_TASK_DIR"; fi '
           '|| {{ echo "orch: could not unpack the workdir snapshot {zip}" >&2; exit 1; }}')


@dataclass(frozen=True)
class TaskContext:
    """What every task of one submission shares."""

    pool_id: str
    job_id: str
    vm_size: str
    cpus_per_node: float
    gpus_per_node: int
    slots_per_node: int
    pool_env: Mapping[str, str]
    workdir_url: str | None
    outputs_url: str | None
    output_condition: str
    container: m.BatchTaskContainerSettings | None = None
    input_files: tuple[m.ResourceFile, ...] = ()  # the spec's inputs (``inputs.input_resource_files``)
    checkpoint_helper_url: str | None = None  # ``node_checkpoint`` as a read-only blob URL (``checkpoints``)


def shell_command(command: str | Sequence[str]) -> str:
    """A command line Batch can run: a shell string through ``/bin/sh -c``, a list quoted."""
    if isinstance(command, str):
        return "/bin/sh -c " + shlex.quote(command)
    return shlex.join(command)


def environment(env: Mapping[str, str]) -> list[m.EnvironmentSetting]:
    return [m.EnvironmentSetting(name=name, value=value) for name, value in env.items()]


def _prelude(zip_path: str | None, shared_inputs: Sequence[str] = ()) -> list[str]:
    lines = [
        'ORCH_TASK_DIR="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}"',
        f'ORCH_METRICS_FILE="$ORCH_TASK_DIR/{METRICS_NAME}"',
        'ORCH_CHECKPOINT_DIR="${AZ_BATCH_TASK_DIR:-$ORCH_TASK_DIR}/checkpoint"',
        'attempts="${AZ_BATCH_TASK_DIR:-$ORCH_TASK_DIR}/.orch-attempt"',
        'ORCH_TASK_ATTEMPT=$(( $(cat "$attempts" 2>/dev/null || echo 0) + 1 ))',
        'echo "$ORCH_TASK_ATTEMPT" > "$attempts"',
        "export ORCH_TASK_DIR ORCH_METRICS_FILE ORCH_TASK_ATTEMPT ORCH_CHECKPOINT_DIR",
        'mkdir -p "$ORCH_CHECKPOINT_DIR"',
        'cd "$ORCH_TASK_DIR"',
    ]
    if zip_path:
        lines.append(_UNPACK.format(zip=zip_path))
    for target in shared_inputs:  # multi-instance inputs land in the shared dir: link them into the task dir
        quoted = shlex.quote(target)
        lines.append(f'mkdir -p "$(dirname {quoted})" && ln -sfn "$AZ_BATCH_TASK_SHARED_DIR"/{quoted} {quoted}')
    return lines


def wrapped_command(user_line: str, zip_path: str | None, shared_inputs: Sequence[str] = (),
                    helper: str | None = None) -> str:
    """``/bin/sh -c '<prelude>; exec <user_line>'``; with ``helper`` (the checkpoint helper's path
    on the node) the line runs under it when the node has Python 3."""
    launch = [f"exec {user_line}"]
    if helper is not None:
        launch = [f'py="${{ORCH_PYTHON:-python3}}"; if command -v "$py" >/dev/null 2>&1; then '
                  f'set -- "$py" {helper} run --; else echo "orch: $py is not on this node: $ORCH_CHECKPOINT_DIR '
                  f'is neither restored nor saved" >&2; unset {CHECKPOINT_URL_ENV}; set --; fi',
                  f'exec "$@" {user_line}']
    return "/bin/sh -c " + shlex.quote("; ".join(_prelude(zip_path, shared_inputs) + launch))


def required_slots(launch: TaskLaunch, ctx: TaskContext) -> int:
    """Slots a task takes: its CPU share of a node. A multi-node (multi-instance) task takes 1:
    Batch requires it, and schedules such tasks only on pools with one slot per node, so each of
    its instances has a node to itself (``AzurePoolOptions.distributed_problem`` refuses others)."""
    if launch.distributed is not None and launch.distributed.nodes != 1:
        return 1
    per_slot = ctx.cpus_per_node / ctx.slots_per_node
    return max(1, min(ctx.slots_per_node, math.ceil(launch.resources.cpus / per_slot - 1e-9)))


def output_files(launch: TaskLaunch, ctx: TaskContext, prefix: str) -> list[m.OutputFile] | None:
    """Logs and metrics always go to blob storage (so they outlive the node); the task's
    ``output_files`` globs go under ``outputs/`` with the pool's upload condition."""
    if ctx.outputs_url is None:
        return None

    def upload(pattern: str, path: str, condition: str) -> m.OutputFile:
        destination = m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
            container_url=ctx.outputs_url, path=path))
        return m.OutputFile(file_pattern=pattern, destination=destination,
                            upload_options=m.OutputFileUploadConfiguration(upload_condition=condition))

    files = [upload("../std*.txt", prefix.rstrip("/"), "taskcompletion"),
             upload(f"{METRICS_NAME}*", prefix.rstrip("/"), "taskcompletion")]
    for pattern in launch.output_files:
        wild = any(ch in pattern for ch in "*?[")
        target = f"{prefix}outputs" if wild else f"{prefix}outputs/{pattern.lstrip('./')}"
        files.append(upload(pattern, target, ctx.output_condition))
    return files


def task_options(launch: TaskLaunch, ctx: TaskContext, prefix: str, task_files: Sequence[m.ResourceFile] = (),
                 checkpoint_url: str | None = None) -> m.BatchTaskCreateOptions:
    """The Batch task for ``launch`` (``prefix``: its blob prefix for uploaded files;
    ``task_files``: the resource files of ``launch.inputs``, with their read URLs;
    ``checkpoint_url``: its checkpoint blob's SAS URL, see ``checkpoints``)."""
    env = {**ctx.pool_env, **launch.env, "ORCH_POOL_ID": ctx.pool_id, "ORCH_JOB_ID": ctx.job_id,
           "ORCH_TASK_ID": launch.id}
    if launch.params:
        env[PARAMS_ENV] = json.dumps(dict(launch.params), default=str)
    user_line = shell_command(launch.command)
    multi = None
    workdir_file = [m.ResourceFile(http_url=ctx.workdir_url, file_path=WORKDIR_ZIP)] if ctx.workdir_url else []
    helper_file = []
    if ctx.checkpoint_helper_url and checkpoint_url:
        env[CHECKPOINT_URL_ENV] = checkpoint_url
        helper_file = [m.ResourceFile(http_url=ctx.checkpoint_helper_url, file_path=CHECKPOINT_HELPER)]
    resources = (workdir_file + list(ctx.input_files) + list(task_files) + helper_file) or None
    dist = launch.distributed
    if dist is not None and dist.nodes != 1:
        nodes = int(dist.nodes)
        env.update(vm_sizes.nccl_env(ctx.vm_size))
        user_line = multi_instance_command(dist, dist.processes_per_node or 1, launch.command, num_nodes=nodes,
                                           gpus_per_node=ctx.gpus_per_node)
        zip_path = f"$AZ_BATCH_TASK_SHARED_DIR/{WORKDIR_ZIP}" if workdir_file else None
        tops = sorted({str(f.file_path).split("/", 1)[0] for f in ctx.input_files})
        coordination = wrapped_command(coordination_command(dist, in_container=ctx.container is not None), zip_path,
                                       tops)
        multi = m.MultiInstanceSettings(number_of_instances=nodes, coordination_command_line=coordination,
                                        common_resource_files=resources)
        command_line = wrapped_command(user_line, None, helper=(f'"$AZ_BATCH_TASK_SHARED_DIR"/{CHECKPOINT_HELPER}'
                                                                if helper_file else None))
        resources = None
    else:
        command_line = wrapped_command(user_line, f"$ORCH_TASK_DIR/{WORKDIR_ZIP}" if workdir_file else None,
                                       helper=f'"$ORCH_TASK_DIR"/{CHECKPOINT_HELPER}' if helper_file else None)
    constraints = m.BatchTaskConstraints(
        max_task_retry_count=launch.max_retries,
        max_wall_clock_time=timedelta(seconds=launch.max_wall_time) if launch.max_wall_time else None)
    return m.BatchTaskCreateOptions(
        id=launch.id,
        display_name=launch.fingerprint,  # read back to notice another task submitted under this id
        command_line=command_line,
        environment_settings=environment(env),
        constraints=constraints,
        required_slots=required_slots(launch, ctx),
        depends_on=m.BatchTaskDependencies(task_ids=list(launch.depends_on)) if launch.depends_on else None,
        resource_files=resources,
        output_files=output_files(launch, ctx, prefix),
        multi_instance_settings=multi,
        container_settings=ctx.container,
    )
