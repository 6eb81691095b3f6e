"""Planning: a job spec and its pool's spec become a ``Plan`` that any backend can run.

Pure: no backend is called (a file or custom task factory is expanded once, reading local files
or importing the generator, so a failing one submits nothing). Everything that can be checked is
checked here, before the first call that creates anything:

- **Capacity**: every task fits one node of the pool (CPUs, GPUs); a distributed task's launcher
  is one the backend can start, its nodes exist, may talk to each other and suit the backend's
  placement rules (``BackendBlock.distributed_problem``); blob inputs need a backend that reads
  blob storage.
- **Budgets**: amounts above zero; they travel in ``JobLaunch.budget`` / ``sweep_budgets`` (for the
  backend to enforce where the work runs) and in the index entry (for ``orch status`` warnings).
  Whether the pool can price them is ``submit``'s check (it needs the backend's capabilities).
- **Sweeps**: placeholders (each sweep's first trial is rendered) and factories without a known
  count (expanded in full).
- **Adaptive sweeps** (``sweep.adaptive.is_adaptive``: Bayesian sampling, early termination or a
  sweep timeout) need a **sweep controller** in the cluster: the job is submitted unsealed with
  every trial known up front (all but the Bayesian ones), and the controller adds trials, stops
  them and seals the job. So do sweeps with ``limits.max_concurrent_trials`` on an engine that
  cannot cap tasks in flight (the pool block's ``caps_in_flight``): their trials are held back
  and the controller streams them (``sweep.adaptive.is_held``). Other jobs are submitted sealed.
  A pool whose cluster cannot run a controller (``BackendBlock.controller_problem``, e.g. an Azure
  pool with no way to reach Batch from a node) refuses such a job here.

Task ids are deterministic (spec ids, trial ids), so a plan run again submits only what is missing.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cost import budgets
from orchestrator.errors import CapacityError, SpecError, UnsupportedError, Where
from orchestrator.launch.plans import resolve_num_nodes
from orchestrator.model import JobInput, JobLaunch, TaskLaunch
from orchestrator.records.job_index import JobEntry
from orchestrator.spec.job import JobSpec, TaskSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep import expand, substitute
from orchestrator.sweep.adaptive import is_held, needs_controller
from orchestrator.sweep.bayes import BayesianSearch
from orchestrator.sweep.controller import ControllerSettings
from orchestrator.sweep.task_factory import BlobLister
from orchestrator.sweep.trial import Trial, trial_task_id
from orchestrator.task_launch import launch_for


@dataclass(frozen=True)
class Plan:
    """What submitting ``spec`` to ``pool`` means (see the module docstring).

    ``job`` is the job as backends receive it (the workdir snapshot is added at submission);
    ``controller`` is set when the job needs a sweep controller; ``index`` is the entry the
    local job index records; ``warnings`` are for the user (e.g. unused sweep parameters).
    """

    spec: JobSpec
    pool: PoolSpec
    job: JobLaunch
    index: JobEntry
    controller: ControllerSettings | None
    warnings: tuple[str, ...]
    base_dir: Path
    blob_lister: BlobLister | None = None

    def launches(self) -> Iterator[TaskLaunch]:
        """Every task submitted up front, streamed in spec order (a sweep's trials; none of a
        Bayesian or held-back sweep)."""
        return static_launches(self.spec, gpus_per_node=self.pool.gpus_per_node, pool_nodes=self.pool.nodes.total,
                               base_dir=self.base_dir, caps_in_flight=self.pool.block.caps_in_flight,
                               blob_lister=self.blob_lister)


def make_plan(job: JobSpec, pool: PoolSpec, *, base_dir: Path, blob_lister: BlobLister | None = None) -> Plan:
    """Check ``job`` against ``pool`` and plan its submission (see the module docstring).
    ``blob_lister`` lists the blobs of ``azure_storage`` file factories (the pool backend's)."""
    check_fits(job, pool)
    budgets.check_amounts(job)
    budget, sweep_budgets = budgets.job_budgets(job)
    warnings = tuple(preflight(job, base_dir=base_dir, blob_lister=blob_lister))
    caps = pool.block.caps_in_flight
    controlled = any(needs_controller(task, caps_in_flight=caps) for task in job.tasks)
    problem = pool.block.controller_problem() if controlled else None
    if problem is not None:
        raise UnsupportedError(f"job {job.id!r} on pool {pool.id!r}: {problem[0]}", hint=problem[1])
    launch = JobLaunch(id=job.id, pool_id=job.pool, seal=job.auto_complete and not controlled, controlled=controlled,
                       max_in_flight=job_concurrency(job) if caps else None,
                       uses_dependencies=any(task.depends_on for task in job.tasks),
                       inputs=check_inputs(job, base_dir), spec_digest=spec_digest(job), budget=budget,
                       sweep_budgets=sweep_budgets)
    sweeps = [task for task in job.tasks if task.is_sweep()]
    objective = next((task.objective for task in sweeps if task.objective), None)
    index = JobEntry(id=job.id, pool_id=job.pool, backend=pool.backend, kind="sweep" if sweeps else "job",
                     objective=objective.model_dump() if objective else None,
                     trials=planned_trials(job) if sweeps else None, budget=budget,
                     sweep_budgets=sweep_budgets or None)
    return Plan(spec=job, pool=pool, job=launch, index=index,
                controller=controller_settings(pool) if controlled else None, warnings=warnings, base_dir=base_dir,
                blob_lister=blob_lister)


def check_fits(job: JobSpec, pool: PoolSpec) -> None:
    """Every task fits one node of the pool, and distributed tasks the pool's nodes and backend."""
    block = pool.block
    for index, task in enumerate(job.tasks):
        where = f"tasks[{index}]"
        if task.resources.cpus > pool.cpus_per_node:
            raise CapacityError(f"{where} needs {task.resources.cpus:g} CPUs but pool {pool.id!r} nodes have "
                                f"{pool.cpus_per_node:g}", hint="lower resources.cpus or use a bigger pool")
        if task.resources.gpus > pool.gpus_per_node:
            raise CapacityError(f"{where} needs {task.resources.gpus:g} GPUs but pool {pool.id!r} nodes have "
                                f"{pool.gpus_per_node}", hint="lower resources.gpus or use a GPU pool")
        factory = task.task_factory.kind() if task.task_factory else None
        if reads_blobs(task) and not block.blob_inputs:
            raise UnsupportedError(f"{where}.task_factory.file.azure_storage: the {pool.backend} backend cannot give "
                                   "tasks blobs", hint="list local files with local_path, or use an azure pool")
        if is_held(task, caps_in_flight=block.caps_in_flight) and factory in ("file", "custom"):
            raise UnsupportedError(f"{where}: the {pool.backend} backend cannot cap tasks in flight, so its sweep "
                                   "controller streams the trials of limits.max_concurrent_trials sweeps where it "
                                   f"runs; a {factory} task factory reads this machine's files",
                                   hint="use a pool whose engine caps tasks in flight, or drop "
                                        "limits.max_concurrent_trials")
        dist = task.distributed
        if dist is None:
            continue
        if dist.launcher not in block.launchers:
            raise UnsupportedError(f"{where}.distributed: the {pool.backend} backend cannot start launcher "
                                   f"{dist.launcher}", hint=block.launcher_note or
                                   f"use one of: {', '.join(sorted(block.launchers))}")
        try:
            nodes = resolve_num_nodes(dist, pool.nodes.total)
        except CapacityError as exc:
            raise CapacityError(f"{where}.distributed asks {dist.nodes} nodes but pool {pool.id!r} has "
                                f"{pool.nodes.total}", hint=exc.hint) from None
        if nodes > 1 and not block.spans_nodes(pool.nodes.total):
            raise CapacityError(f"{where} spans several nodes but pool {pool.id!r} was created without "
                                "inter-node communication",
                                hint=f"set {pool.backend}.inter_node_communication: true in the pool file "
                                     "and create it again")
        problem = block.distributed_problem(nodes=nodes, slots_per_node=pool.slots_per_node) if nodes > 1 else None
        if problem is not None:
            raise CapacityError(f"{where}.distributed: {problem[0]}", hint=problem[1])
    for index, item in enumerate(job.inputs):
        if item.blob is not None and not block.blob_inputs:
            raise UnsupportedError(f"inputs[{index}]: the {pool.backend} backend cannot read blob inputs",
                                   hint="download the data in the task, or use a local path")


def check_inputs(job: JobSpec, base_dir: Path) -> tuple[JobInput, ...]:
    """The job's inputs with local paths made absolute; ``SpecError`` for one that does not exist."""
    inputs = []
    for index, item in enumerate(job.inputs):
        path = (base_dir / item.path).resolve() if item.path is not None else None
        if path is not None and not path.exists():
            raise SpecError(f"input {item.path!r} does not exist (looked in {base_dir})",
                            where=Where(key_path=f"inputs[{index}].path"),
                            hint="paths in inputs: are relative to the config dir")
        inputs.append(JobInput(to=item.to, blob=item.blob, path=path))
    return tuple(inputs)


def reads_blobs(task: TaskSpec) -> bool:
    """True for a task whose file factory lists blob storage (Shipyard's ``azure_storage``)."""
    factory = task.task_factory
    return factory is not None and factory.file is not None and factory.file.azure_storage is not None


def preflight(job: JobSpec, *, base_dir: Path | None = None, blob_lister: BlobLister | None = None) -> list[str]:
    """Check every sweep before submitting (see the module docstring); returns warnings."""
    warnings: list[str] = []
    for index, task in enumerate(job.tasks):
        if not task.is_sweep():
            continue
        where = f"tasks[{index}]"
        if task.sampling == "bayesian":
            first: Trial | None = first_proposals(task, 1)[0]
        else:
            first = next(iter(expand.expand(task, key_path=where, base_dir=base_dir, limit=1,
                                            blob_lister=blob_lister)), None)
            if expand.count(task) is None:
                for _ in expand.expand(task, key_path=where, base_dir=base_dir, blob_lister=blob_lister):
                    pass
        if first is not None:
            warnings += substitute.check([task.command], first.params, key_path=f"{where}.command")
            launch_for(job, task, "preflight", gpus_per_node=0, pool_nodes=None, trial=first,
                       key_path=f"{where}.command")
    return warnings


def static_launches(job: JobSpec, *, gpus_per_node: int = 0, pool_nodes: int | None = None,
                    base_dir: Path | None = None, caps_in_flight: bool = True,
                    blob_lister: BlobLister | None = None) -> Iterator[TaskLaunch]:
    """Every task submitted up front, in spec order, streamed: sweeps their trials, Bayesian and
    held-back ones (``caps_in_flight`` false) none."""
    for index, (task_id, task) in enumerate(zip(job.task_ids(), job.tasks)):
        if (task.is_sweep() and task.sampling == "bayesian") or is_held(task, caps_in_flight=caps_in_flight):
            continue
        trials = (expand.expand(task, key_path=f"tasks[{index}]", base_dir=base_dir, blob_lister=blob_lister)
                  if task.is_sweep() else [None])
        for trial in trials:
            yield launch_for(job, task, trial_task_id(task_id, trial.index) if trial else task_id,
                             gpus_per_node=gpus_per_node, pool_nodes=pool_nodes, trial=trial,
                             key_path=f"tasks[{index}].command")


def dry_run_launches(job: JobSpec, *, base_dir: Path | None = None,
                     blob_lister: BlobLister | None = None) -> Iterator[TaskLaunch]:
    """What ``--dry-run`` shows (no pool needed, but for listing blobs): the static launches, then
    each Bayesian sweep's first proposals (as many as run at once; later ones depend on results)."""
    yield from static_launches(job, base_dir=base_dir, blob_lister=blob_lister)
    for index, (task_id, task) in enumerate(zip(job.task_ids(), job.tasks)):
        if task.is_sweep() and task.sampling == "bayesian":
            limits = task.limits
            first = min(limits.max_total_trials or 1, limits.max_concurrent_trials or 1) if limits else 1
            for trial in first_proposals(task, first):
                yield launch_for(job, task, trial_task_id(task_id, trial.index), gpus_per_node=0, pool_nodes=None,
                                 trial=trial, key_path=f"tasks[{index}].command")


def first_proposals(task: TaskSpec, count: int) -> list[Trial]:
    """The Bayesian trials a fresh controller asks first (before any result), in order."""
    if task.search_space is None or task.objective is None:
        raise SpecError("bayesian sampling needs a search_space and an objective")
    search = BayesianSearch(task.search_space, task.objective, seed=task.effective_seed())
    return [search.ask() for _ in range(count)]


def planned_trials(job: JobSpec) -> int:
    """Tasks the job will have: each sweep's trial count (Bayesian: ``max_total_trials``), 1 per plain task."""
    return sum(expand.count(task) or 0 for task in job.tasks)


def spec_digest(job: JobSpec) -> str:
    """The job spec, hashed: submitting another spec under an existing job id is noticed. Only
    what the spec sets counts, so an orch upgrade that adds keys with defaults changes no digest."""
    return hashlib.sha256(job.model_dump_json(exclude_defaults=True).encode()).hexdigest()[:16]


def job_concurrency(job: JobSpec) -> int | None:
    """The job's cap on tasks in flight: the smallest ``limits.max_concurrent_trials`` of its sweeps."""
    caps = [t.limits.max_concurrent_trials for t in job.tasks if t.limits and t.limits.max_concurrent_trials]
    return min(caps) if caps else None


def controller_settings(pool: PoolSpec) -> ControllerSettings:
    """How a controller renders trials on ``pool``: as many at once, by default, as it has slots."""
    slots = pool.slots_per_node * pool.nodes.total
    return ControllerSettings(gpus_per_node=pool.gpus_per_node, pool_nodes=pool.nodes.total,
                              default_concurrency=max(1, slots), caps_in_flight=pool.block.caps_in_flight)
