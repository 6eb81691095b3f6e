"""The Backend contract every engine implements, and the optional capabilities it may declare.

Contract (as Ray's v2 instance provider states its own):

- Pools are named by the spec's ids; jobs by ``JobRef`` (pool id, job id); tasks by the ids in
  the ``TaskLaunch`` stream. Every mutating call is **idempotent** on those ids, so re-running
  it after a crash or Ctrl-C converges and never duplicates: ``ensure_pool`` of an existing
  pool returns it, ``submit`` adds only the tasks not yet present and accounts for every one.
- Reads are **eventually consistent**: they may lag writes by a status interval.
- Methods raise only ``OrchError`` subclasses (``NotFoundError`` for a missing pool or job).
- A backend never prompts, prints or reads YAML. It reads orch's local records, and writes only
  its own ``engine`` part of a pool record (``records.pool_records.save_engine``); the core
  writes everything else (pool lifecycle, the job index).

Optional capabilities are declared in ``capabilities`` and asked for with ``capability``, never
probed with ``hasattr``: a backend without one gets a clear "the X backend has no …" error.
Every backend passes the contract suite in ``tests/test_backend_contract.py``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar, cast

from orchestrator import registry
from orchestrator.errors import UnsupportedError

if TYPE_CHECKING:
    from orchestrator.model import (
        FileChunk,
        JobInfo,
        JobLaunch,
        JobRef,
        PoolInfo,
        PriceQuote,
        StoredFile,
        SubmitReport,
        TaskInfo,
        TaskLaunch,
        TaskState,
        TransferReport,
        UsageSpan,
    )
    from orchestrator.spec.job import JobSpec
    from orchestrator.spec.pool import PoolSpec
    from orchestrator.sweep.controller import ControllerSettings
    from orchestrator.sweep.task_factory import ListedFile

ProgressFn = Callable[[str], None]


class Capability(str, Enum):
    """What a backend may offer beyond the contract; the value names it in errors."""

    SWEEP_HOST = "sweep host"
    DATA_STORE = "data store"
    STORAGE_TEARDOWN = "storage teardown"
    PRICE_LIST = "price list"
    BLOB_FILES = "blob file listing"
    COST_LEDGER = "cost ledger"
    FILE_BATCHES = "batched file reads"
    JOB_WATCHING = "job watching"


class Backend(Protocol):
    """The contract (see the module docstring). ``name`` is the registry's name for it."""

    name: str
    capabilities: frozenset[Capability]

    # -- pools --------------------------------------------------------------------------
    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        """Create the pool, or return it if it exists with this spec (``ConflictError`` if it
        exists with another). Waits until it can run tasks."""

    def get_pool(self, pool_id: str) -> PoolInfo | None:
        """The pool and its nodes; None when orch has no record of it."""

    def resize_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        """Bring the pool to ``spec.nodes`` (the pool's spec with other node counts)."""

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        """Remove the pool and everything orch started for it. Refuses while tasks run unless ``force``."""

    # -- jobs ---------------------------------------------------------------------------
    def submit(self, job: JobLaunch, tasks: Iterable[TaskLaunch]) -> SubmitReport:
        """Create the job if new and add the tasks not yet present; every task is accounted for.
        ``tasks`` is a stream: it may be long, and is read once. While the job is active, keep
        ``job.spec_digest`` (``JobInfo.spec_digest``) and each task's fingerprint
        (``TaskInfo.fingerprint``), so the core can tell another spec under the same id."""

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        """Every job of the pool, oldest first."""

    def get_job(self, job: JobRef) -> JobInfo | None: ...

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        """Every task of the job in submission order (``NotFoundError`` for an unknown job)."""

    def stop_tasks(self, job: JobRef, task_ids: Sequence[str]) -> None:
        """End tasks early (sweep policies): they end ``stopped``, not failed; ended ones are left."""

    def cancel_job(self, job: JobRef) -> None:
        """Pending tasks never start; running ones are killed with what they started."""

    def delete_job(self, job: JobRef) -> None:
        """Forget the job, cancelling it first while it runs (``NotFoundError`` if there is none)."""

    def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        """Bytes of a task file from ``offset`` and the file's size (None while it does not exist).
        ``name``: stdout, stderr, metrics, or a path under the task's working directory."""


class SweepHost(Protocol):
    """Runs a job's sweep controller next to the cluster, so adaptive sweeps go on without the CLI."""

    def start_sweep(self, job: JobLaunch, spec: JobSpec, settings: ControllerSettings) -> None:
        """Start the controller of ``spec``'s adaptive sweeps, after ``submit`` put in every task
        known up front (the job was submitted with ``controlled``: unsealed).

        The controller (``orchestrator.sweep.controller``) adds Bayesian trials within
        ``limits``, stops trials an ``early_termination`` policy or ``limits.timeout`` rejects
        (they end ``stopped``), and seals the job when no trial will be added if
        ``spec.auto_complete``. Idempotent: a running controller is kept; one started again over
        a job resumes from its tasks and metrics and never duplicates a trial.
        """

    def sweep_state(self, job: JobRef) -> dict[str, Any] | None:
        """The running controller's summary (``running``, ``passes``, ``sealed``, ``last_error``,
        ``sweeps``), or None when none runs for the job."""


class DataStore(Protocol):
    """Files kept with a pool (inputs, outputs, log copies): a bucket or blob container."""

    location: str

    def list(self, prefix: str = "") -> list[StoredFile]: ...

    def upload(self, source: Path, prefix: str) -> TransferReport:
        """Send a file or folder under ``prefix``; files already there with the same content are skipped."""

    def download(self, prefix: str, destination: Path) -> list[Path]:
        """Fetch every file under ``prefix`` into ``destination``, keeping paths below the prefix's folder."""


class DataStoreHost(Protocol):
    def data_store(self, pool: PoolSpec) -> DataStore: ...


class StorageTeardown(Protocol):
    def delete_storage(self, pool: PoolSpec) -> list[str]:
        """Delete what the pool keeps in storage; returns what was removed, for the user."""


class BlobFiles(Protocol):
    def blob_files(self, pool: PoolSpec, container: str, prefix: str) -> Iterator[ListedFile]:
        """The blobs of ``container`` in the pool's storage account whose names start with
        ``prefix``, in name order (for Shipyard's ``azure_storage`` file factories); their URLs
        carry no credentials: tasks get the blobs as inputs."""


class PriceList(Protocol):
    def quote(self, pool: PoolSpec) -> PriceQuote:
        """What ``pool`` would cost per hour at list prices (nothing is created)."""


class CostLedger(Protocol):
    def usage(self, pool_id: str, *, since: float | None = None) -> Iterator[UsageSpan]:
        """The pool's node time since ``since`` (epoch seconds; None: all it keeps) as spans, each
        priced and attributed to the task that held that share of the node, or to no one (idle).
        Computed from the engine's own records, so it holds after the CLI that created the pool
        has exited; a pool that is gone keeps what the backend recorded of it."""


class FileBatches(Protocol):
    def read_files(self, job: JobRef, reads: Sequence[tuple[str, str, int]]) -> list[FileChunk | None]:
        """``read_file`` of many task files at once (following a job's every task costs a few
        calls per poll, not one per task): for each ``(task id, name, offset)``, in order, what
        ``read_file`` returns for it. Raises as ``read_file`` does."""


class JobWatching(Protocol):
    def wait_job(self, job: JobRef, *, timeout: float) -> JobInfo | None:
        """The job as soon as it has finished, or as it is after ``timeout`` seconds (None when
        there is no such job): a follower sleeps in it and sees the end as it happens."""

    def task_states(self, job: JobRef) -> dict[str, TaskState]:
        """Every task's state (what ``list_tasks`` says of it, in one small answer), in
        submission order; ``NotFoundError`` for an unknown job."""


C = TypeVar("C")
CAPABILITY_OF: dict[type, Capability] = {
    SweepHost: Capability.SWEEP_HOST,
    DataStoreHost: Capability.DATA_STORE,
    StorageTeardown: Capability.STORAGE_TEARDOWN,
    PriceList: Capability.PRICE_LIST,
    BlobFiles: Capability.BLOB_FILES,
    CostLedger: Capability.COST_LEDGER,
    FileBatches: Capability.FILE_BATCHES,
    JobWatching: Capability.JOB_WATCHING,
}


def supports(backend: Backend, kind: type) -> bool:
    """Whether ``backend`` declares the capability ``kind`` (one of the protocols above)."""
    return CAPABILITY_OF[kind] in backend.capabilities


def capability(backend: Backend, kind: type[C]) -> C:
    """``backend`` as ``kind`` if it declares that capability, else ``UnsupportedError``."""
    wanted = CAPABILITY_OF[kind]
    if wanted not in backend.capabilities:
        raise UnsupportedError(f"the {backend.name} backend has no {wanted.value}",
                               hint=f"use a pool whose backend offers a {wanted.value}")
    return cast(C, backend)


def load_backend(name: str, *, config_dir: Path | None = None) -> Backend:
    """The named backend (``orchestrator.registry``), imported on first use and kept for the
    rest of the process, so ``orch --help`` never imports an SDK.

    ``config_dir`` (the CLI's ``--config-dir``) tells backends that need credentials where to
    look first; without it they use ``ORCH_CONFIG_DIR``, then ``$ORCH_HOME``, then environment
    variables.
    """
    return _load(name, config_dir.resolve() if config_dir is not None else None)


@lru_cache(maxsize=None)
def _load(name: str, config_dir: Path | None) -> Backend:
    backend: Backend = registry.backend_class(name)(config_dir)
    return backend
