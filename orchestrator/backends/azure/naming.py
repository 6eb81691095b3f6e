"""Names orch gives Azure things: blob containers per pool and blob paths per job and task.

Container names must be 3-63 lowercase letters, digits and single hyphens; pool ids may hold
capitals and underscores, so those get a short hash to stay unique.
"""
from __future__ import annotations

import hashlib
import re

CONTAINER_PREFIX = "orch-"
METADATA_MARK = "orch"
METADATA_SPEC = "orch-spec"
CANCEL_REASON = "orch: cancelled"
DEPENDENCY_REASON = "orch: dependencies failed"
BUDGET_REASON = "orch: budget"  # a job its manager ended at a budget or its pool's max_spend
INPUTS_PREFIX = "inputs/"
SWEEP_MANAGER_ID = "orch-job-manager"  # a job's manager task (sweep controller, budgets); never a trial
METADATA_SWEEP = "orch-sweep"  # the job has a manager that runs a sweep controller
METADATA_BUDGET = "orch-budget"  # the job has a manager that keeps budgets
METADATA_SPEC_DIGEST = "orch-spec-digest"  # the job spec a job was (last) submitted from


def pool_container(pool_id: str, override: str | None = None) -> str:
    """The blob container of a pool: inputs, outputs and log copies of its jobs."""
    if override:
        return override
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", pool_id.lower())).strip("-")
    name = CONTAINER_PREFIX + slug
    if slug != pool_id or len(name) > 63:
        digest = hashlib.sha256(pool_id.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


def task_prefix(job_id: str, task_id: str) -> str:
    """Blob prefix of one task's uploaded files: ``jobs/<job>/<task>/``."""
    return f"jobs/{job_id}/{task_id}/"


def input_blob(digest: str, suffix: str = ".zip") -> str:
    """Content-addressed blob of an input (the workdir snapshot is one)."""
    return f"{INPUTS_PREFIX}{digest}{suffix}"


def task_file_path(name: str) -> tuple[str, str]:
    """Where a task file named as ``orch logs --file`` takes it lives: (Batch task file, blob name).

    ``stdout``/``stderr`` are in the task directory, ``metrics`` and other paths under the
    working directory (outputs keep their path under ``outputs/`` in blob storage).
    """
    if name in ("stdout", "stderr"):
        return f"{name}.txt", f"{name}.txt"
    if name == "metrics":
        return "wd/metrics.jsonl", "metrics.jsonl"
    clean = name.lstrip("/")
    if clean.startswith("outputs/"):
        return f"wd/{clean.removeprefix('outputs/')}", clean
    return f"wd/{clean}", f"outputs/{clean}"


def sweep_spec_blob(job_id: str) -> str:
    """Where ``start_sweep`` leaves what a job's sweep manager needs (spec, task context)."""
    return f"sweeps/{job_id}/manager.json"


def stopped_prefix(job_id: str) -> str:
    """Prefix of a job's stopped-task markers: one empty blob ``stopped/<job>/<task>`` per task."""
    return f"stopped/{job_id}/"


def budget_payload_blob(job_id: str) -> str:
    """What a job's manager needs to keep its budgets (``budgets.BudgetPayload``)."""
    return f"budgets/{job_id}/payload.json"


def budget_state_blob(job_id: str) -> str:
    """What a job's manager stopped for a budget, and why (``budgets.BudgetState``)."""
    return f"budgets/{job_id}/state.json"


def checkpoint_prefix(job_id: str) -> str:
    """Prefix of a job's task checkpoints (deleted with the job)."""
    return f"checkpoints/{job_id}/"


def checkpoint_blob(job_id: str, task_id: str) -> str:
    """The blob holding one task's last saved checkpoint (a zip of its ``ORCH_CHECKPOINT_DIR``)."""
    return f"{checkpoint_prefix(job_id)}{task_id}/checkpoint.zip"
