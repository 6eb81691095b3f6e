"""The Backend protocol every engine implements, and the lazy registry that finds them.

Contract (as Ray's instance provider states its own): pools and jobs are named by the ids in
the spec; every mutating call is idempotent on those ids, so re-running after a crash or Ctrl-C
converges and never duplicates. Reads may lag writes. Methods raise only ``OrchError``
subclasses. Backends never prompt, print or read YAML.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from orchestrator.errors import SpecError

if TYPE_CHECKING:
    from orchestrator.model import FileChunk, JobInfo, PoolInfo, SubmitReport, TaskInfo, TaskLaunch
    from orchestrator.spec import JobSpec, PoolSpec

ProgressFn = Callable[[str], None]


class Backend(Protocol):
    name: str

    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        """Create the pool, or return it if it exists with this spec. Waits until it can run tasks."""

    def get_pool(self, pool_id: str) -> PoolInfo | None: ...

    def list_pools(self) -> list[PoolInfo]: ...

    def resize_pool(self, pool_id: str, nodes: int, *, progress: ProgressFn | None = None) -> PoolInfo: ...

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        """Remove the pool and everything orch started for it. Refuses while tasks run unless ``force``."""

    def submit(self, job: JobSpec, tasks: Iterable[TaskLaunch], *, workdir: tuple[str, bytes] | None = None) -> SubmitReport:
        """Create the job if new and add tasks not yet present; every task is accounted for."""

    def list_jobs(self, pool_id: str | None = None) -> list[JobInfo]: ...

    def get_job(self, job_id: str) -> JobInfo | None: ...

    def list_tasks(self, job_id: str) -> list[TaskInfo]: ...

    def cancel_job(self, job_id: str) -> None: ...

    def stop_tasks(self, job_id: str, task_ids: list[str]) -> None:
        """Stop tasks early (sweep policies): they end ``stopped``, which is not a failure."""

    def delete_job(self, job_id: str) -> None: ...

    def read_file(self, job_id: str, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        """Bytes of a task file from ``offset`` and its size (None while it does not exist)."""

    def start_sweep(self, job: JobSpec) -> None:
        """Start the controller of ``job``'s adaptive sweeps in the cluster, so they go on without
        the caller (Ray: a detached actor; Azure Batch: a job manager task).

        The job must exist, created by ``submit`` unsealed (``auto_complete`` false) with every
        task known up front. The controller (``orchestrator.sweep.controller``) adds Bayesian
        trials within ``limits``, stops trials an ``early_termination`` policy or
        ``limits.timeout`` rejects (they end ``stopped``), and seals the job once no trial will be
        added if ``job.auto_complete``, so the job completes. Idempotent: a running controller is
        kept. A controller started again over a job resumes from its tasks and metrics and never
        duplicates a trial; one whose job is finished or gone ends at once.
        """

    def sweep_state(self, job_id: str) -> dict[str, object] | None:
        """The running controller's summary (``running``, ``passes``, ``sealed``, ``last_error``,
        ``sweeps``), or None when none runs for the job."""


REGISTRY: dict[str, tuple[str, str]] = {
    "ray": ("orchestrator.backends.ray.backend:RayBackend", "pip install 'orch[ray]'"),
    "azure": ("orchestrator.backends.azure.backend:AzureBackend", "pip install 'orch[azure]'"),
}


def load_backend(name: str, *, config_dir: Path | None = None) -> Backend:
    """Import the named backend on first use (so ``orch --help`` never imports an SDK).

    ``config_dir`` (the CLI's ``--config-dir``) tells backends that need credentials where to
    look first; without it they use ``ORCH_CONFIG_DIR``, then ``$ORCH_HOME``, then environment
    variables (see ``orchestrator.backends.azure.credentials``).
    """
    try:
        target, install_hint = REGISTRY[name]
    except KeyError:
        raise SpecError(f"unknown backend {name!r}", hint=f"use one of: {', '.join(sorted(REGISTRY))}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"backend {name!r} is not installed ({exc.name} is missing)", hint=install_hint) from None
    backend: Backend = getattr(module, attr)(config_dir)
    return backend
