"""The node agent: one detached Ray actor per pool node that runs task processes.

It owns its node's share (CPUs, GPUs, slots) for the pool: the manager only sends what fits,
plus a short prefetch queue for short tasks. Each attempt runs as its own session in its own
``wd/``; stdout/stderr go to files on the node; state changes flow back to the manager in
batches, each resent until the manager acknowledges it (a restarted manager is looked up again
by name). Every task process is recorded on the node (``orphans``) so that it can be stopped
even after this agent is gone. Kill requests stop whole process trees. Checkpoints: see
``checkpoints``.
"""
from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray
from orchestrator import workdir
from orchestrator.backends.ray import (
    agent_process,
    checkpoints,
    orphans,
    process_tree,
    task_files,
)
from orchestrator.backends.ray.gang import GangMixin
from orchestrator.backends.ray.janitor import Janitor
from orchestrator.backends.ray.messages import AgentFacts, TaskEvent, TaskRun, coalesce
from orchestrator.model import FileChunk
from orchestrator.records.home import private_dir

_FLUSH_SECONDS = 0.005  # events wait this long for company before they are reported
_FLUSH_BUSY_SECONDS = 0.1  # or up to this long while the local queue holds plenty of work
_QUEUE_BUSY = 32
_READ_LIMIT = 4 * 1024 * 1024
_BATCH_TAIL_READ = 4096
_REPORT_TIMEOUT = 30.0
_RETRY_SECONDS = 0.5


class NodeAgent(GangMixin):
    """Runs the tasks the manager sends; see the module docstring for the contract."""

    def __init__(self, pool_id: str, index: int, node_root: str, cpus: float, gpus: float, slots: int,
                 pool_env: dict[str, str], manager_name: str, namespace: str) -> None:
        self.pool_id, self.index, self.root = pool_id, index, Path(node_root)
        os.umask(0o077)  # what tasks write is the user's alone, as on a private machine
        private_dir(self.root)
        self.capacity = (cpus, gpus, slots)
        self.free_cpus, self.free_slots = cpus, slots
        self.free_gpus = [str(g) for g in ray.get_gpu_ids()][: int(gpus)] or [str(i) for i in range(int(gpus))]
        self.pool_env, self.manager_name, self.namespace = pool_env, manager_name, namespace
        self.queue: collections.deque[TaskRun] = collections.deque()
        self.running: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.runs: dict[tuple[str, str], TaskRun] = {}
        self.cancelled: set[tuple[str, str]] = set()
        self.cancelled_jobs: dict[str, set[str] | None] = {}
        self.lock = threading.Condition()
        self.outbox: list[TaskEvent] = []
        self.workdir_lock = threading.Lock()
        self.unpacked: set[str] = set()  # snapshot digests unpacked under root/snapshots
        self.snapshot_entries: dict[Path, list[tuple[str, bool]]] = {}
        self.recorder = orphans.Recorder(self.root)
        self.base_env: dict[str, str] | None = None
        self.manager: Any = None
        self.priority_note = agent_process.normal_priority()
        self._gang_init()
        self.janitor = Janitor(self.root, self._idle).start()
        threading.Thread(target=self._flush_loop, daemon=True).start()

    # -- facts and start task ------------------------------------------------------------
    def facts(self, start_command: Any = None, start_env: dict[str, str] | None = None,
              start_retries: int = 0) -> AgentFacts:
        """Node facts; runs the pool's start task first when given (result in the facts)."""
        exit_code, error = None, None
        if start_command is not None:
            exit_code, error = self._run_start_task(start_command, start_env or {}, start_retries)
        cpus, gpus, slots = self.capacity
        return AgentFacts(index=self.index, node_id=ray.get_runtime_context().get_node_id(),
                          address=ray.util.get_node_ip_address(), cpus=cpus, gpus=gpus,
                          gpu_ids=tuple(self.free_gpus), slots=slots, start_task_exit=exit_code,
                          start_task_error=error, extra={"hostname": socket.gethostname(), "pid": os.getpid(),
                                                         "priority": self.priority_note, "root": str(self.root),
                                                         "node_started": agent_process.raylet_started()})

    def ping(self) -> bool:
        return True

    def inventory(self) -> list[tuple[str, str, int, str]]:
        """Every attempt this node holds: ``(job, task, attempt, "queued" | "running")`` (gang ranks included)."""
        with self.lock:
            held = [(run.job_id, run.task_id, run.attempt, "queued") for run in self.queue]
            held += [(run.job_id, run.task_id, run.attempt, "running") for run in self.runs.values()]
            held += [(job, task, attempt, "running") for (job, task), attempt in self.rank_attempts.items()]
        return held

    def _run_start_task(self, command: Any, env: dict[str, str], retries: int) -> tuple[int, str | None]:
        start_dir = self.root / "startup"
        start_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **self.pool_env, **env, "ORCH_POOL_ID": self.pool_id,
                    "ORCH_NODE_INDEX": str(self.index)}
        code = -1
        for _ in range(retries + 1):
            with open(start_dir / "stdout.txt", "wb") as out, open(start_dir / "stderr.txt", "wb") as err:
                code = process_tree.spawn(command, cwd=start_dir, env=full_env, stdout=out, stderr=err).wait()
            if code == 0:
                return 0, None
        tail = (start_dir / "stderr.txt").read_bytes()[-2000:].decode("utf-8", "replace")
        return code, tail

    # -- running tasks -------------------------------------------------------------------
    def submit(self, runs: list[TaskRun]) -> None:
        """Queue attempts; they start as soon as the node's share allows."""
        with self.lock:
            self.queue.extend(runs)
            self._start_ready()

    def cancel(self, job_id: str, task_ids: list[str] | None = None) -> int:
        """Stop queued and running attempts of a job (all, or the given tasks). Returns how many."""
        wanted = None if task_ids is None else set(task_ids)
        with self.lock:
            kept: collections.deque[TaskRun] = collections.deque()
            dropped = 0
            for run in self.queue:
                if run.job_id == job_id and (wanted is None or run.task_id in wanted):
                    self._emit(run, "cancelled", error="cancelled before it started")
                    dropped += 1
                else:
                    kept.append(run)
            self.queue = kept
            victims = [(key, proc) for key, proc in self.running.items()
                       if key[0] == job_id and (wanted is None or key[1] in wanted)]
            for key, _ in victims:
                self.cancelled.add(key)
            if wanted is None:
                self.cancelled_jobs[job_id] = None
            elif self.cancelled_jobs.get(job_id, set()) is not None:
                self.cancelled_jobs.setdefault(job_id, set()).update(wanted)
        for _, proc in victims:
            process_tree.kill_tree(proc.pid)
        self.cancel_gangs(job_id, wanted)
        return dropped + len(victims)

    def _is_cancelled(self, run: TaskRun) -> bool:
        if run.job_id not in self.cancelled_jobs:
            return False
        wanted = self.cancelled_jobs[run.job_id]
        return wanted is None or run.task_id in wanted

    def _start_ready(self, *, keep: bool = False) -> tuple[TaskRun, list[str]] | None:
        """Start queued attempts that fit (caller holds the lock), each in a thread of its own;
        with ``keep``, the first is claimed and returned instead, for the calling thread to run."""
        kept: tuple[TaskRun, list[str]] | None = None
        started = True
        while started and self.queue:
            started = False
            for position, run in enumerate(self.queue):
                if self.free_slots >= 1 and self.free_cpus + 1e-9 >= run.cpus and len(self.free_gpus) >= run.gpus:
                    del self.queue[position]
                    self.runs[(run.job_id, run.task_id)] = run
                    gpu_ids = [self.free_gpus.pop(0) for _ in range(int(run.gpus))]
                    self.free_slots -= 1
                    self.free_cpus -= run.cpus
                    if keep and kept is None:
                        kept = (run, gpu_ids)
                    else:
                        threading.Thread(target=self._run, args=(run, gpu_ids), daemon=True).start()
                    started = True
                    break
        return kept

    def _run(self, run: TaskRun, gpu_ids: list[str]) -> None:
        """Run ``run``, then, in the same thread, each attempt its freed share lets start next
        (a short task costs no thread start)."""
        current: tuple[TaskRun, list[str]] | None = (run, gpu_ids)
        while current is not None:
            current = self._run_one(*current)

    def _run_one(self, run: TaskRun, gpu_ids: list[str]) -> tuple[TaskRun, list[str]] | None:
        """Run one attempt and report its end; returns the attempt claimed to run next, if any."""
        key = (run.job_id, run.task_id)
        root = task_files.task_root(self.root, run.job_id, run.task_id)
        code: int | None = None
        error: str | None = None
        saver: checkpoints.Saver | None = None
        handled = False
        try:
            wd, fresh = self._prepare(run, root)
            saver = checkpoints.Saver(root / "checkpoint", run, self._manager)
            saver.restore(fresh=fresh)
            env = self._env(run, root, wd, gpu_ids)
            out, err = task_files.open_logs(root)
            try:
                proc = process_tree.spawn(run.command, cwd=wd, env=env, stdout=out, stderr=err)
            finally:
                os.close(out)
                os.close(err)
            try:
                note = self.recorder.started(run.job_id, run.task_id, proc.pid)
            except OSError:  # not recorded, so nothing could stop it without this agent: not run at all
                process_tree.kill_tree(proc.pid)
                raise
            with self.lock:
                self.running[key] = proc
                late_cancel = self._is_cancelled(run)
                if late_cancel:
                    self.cancelled.add(key)
            if late_cancel:
                process_tree.kill_tree(proc.pid)
            self._emit(run, "running")
            code, error = self._wait(proc, run.wall_time, saver)
            self.recorder.ended(note)
            handled = True
        except OSError as exc:
            error = f"could not start the command: {exc}"
            handled = True
        finally:
            if saver is not None:
                saver.finish()
            with self.lock:
                self.runs.pop(key, None)
                self.running.pop(key, None)
                was_cancelled = key in self.cancelled
                self.cancelled.discard(key)
                self.free_slots += 1
                self.free_cpus += run.cpus
                self.free_gpus.extend(gpu_ids)
                follow = self._start_ready(keep=handled)  # an unexpected error ends this thread: hand all on
        if run.output_files:
            task_files.collect_outputs(root, run.output_files)
        state = "cancelled" if was_cancelled else ("succeeded" if code == 0 and error is None else "failed")
        self._emit(run, state, exit_code=code, error=None if state == "cancelled" else error)
        return follow

    def _prepare(self, run: TaskRun, root: Path) -> tuple[Path, bool]:
        """The attempt's folders, with the job's files linked into ``wd``; returns ``wd`` and
        whether the task's folder is new (a first attempt: its ``checkpoint/`` is empty)."""
        fresh = run.attempt == 0
        try:
            wd = task_files.make_task_dirs(root, fresh=fresh)
        except FileExistsError:  # left by a deleted job of this id the node missed
            task_files.remove_task(root)
            wd = task_files.make_task_dirs(root, fresh=fresh)
        if run.workdir_hash:
            snapshot = self._unpacked(run.workdir_hash)
            workdir.link_entries(snapshot, self._snapshot_entries(snapshot), wd)
        for to, digest, file_name in run.inputs:
            source = self._unpacked(digest)
            workdir.link_at(source / file_name if file_name else source, wd / to)
        return wd, fresh

    def _snapshot_entries(self, snapshot: Path) -> list[tuple[str, bool]]:
        """The top-level entries of an unpacked snapshot (which never changes), listed once."""
        entries = self.snapshot_entries.get(snapshot)
        if entries is None:
            entries = self.snapshot_entries[snapshot] = workdir.top_entries(snapshot)
        return entries

    def _unpacked(self, digest: str) -> Path:
        """The snapshot ``digest`` unpacked on this node (once, fetched from the manager's journal)."""
        snap = self.root / "snapshots" / digest
        if digest in self.unpacked:
            return snap
        with self.workdir_lock:
            if not snap.is_dir():
                snap.parent.mkdir(parents=True, exist_ok=True)
                data = ray.get(self._manager().snapshot.remote(digest), timeout=_REPORT_TIMEOUT)
                if data is None:
                    raise OSError(f"snapshot {digest} is not in the pool manager's journal")
                workdir.unpack(data, snap)
            self.unpacked.add(digest)
        return snap

    def _env(self, run: TaskRun, root: Path, wd: Path, gpu_ids: list[str]) -> dict[str, str]:
        if self.base_env is None:
            # Ray's own settings for the agent actor (RAY_*, its GPU mask, OMP_NUM_THREADS=<actor CPUs>) are
            # not the task's: threads are the user's choice, set through the pool or job env.
            base = {k: v for k, v in os.environ.items()
                    if not k.startswith(("RAY_", "CUDA_VISIBLE")) and k != "OMP_NUM_THREADS"}
            # `python` in a task means the interpreter the cluster runs on, unless the spec says otherwise.
            base["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), base.get("PATH", os.defpath)])
            self.base_env = base
        env = dict(self.base_env)
        env.update(self.pool_env)
        env.update(run.env)
        env.update(ORCH_POOL_ID=self.pool_id, ORCH_JOB_ID=run.job_id, ORCH_TASK_ID=run.task_id,
                   ORCH_TASK_DIR=str(wd), ORCH_TASK_ATTEMPT=str(run.attempt),
                   ORCH_METRICS_FILE=str(root / "metrics.jsonl"), ORCH_NODE_INDEX=str(self.index),
                   ORCH_CHECKPOINT_DIR=str(root / "checkpoint"), CUDA_VISIBLE_DEVICES=",".join(gpu_ids))
        return env

    def _wait(self, proc: subprocess.Popen[bytes], wall_time: float | None,
              saver: checkpoints.Saver) -> tuple[int | None, str | None]:
        """The attempt's exit code, or an error once it ran past ``wall_time`` (then it is killed).
        Its checkpoint folder is watched once it has run ``checkpoints.POLL_SECONDS``."""
        first = checkpoints.POLL_SECONDS if wall_time is None else min(wall_time, checkpoints.POLL_SECONDS)
        code = process_tree.wait_for(proc, first)
        if code is None:
            saver.start()
            code = process_tree.wait_for(proc, None if wall_time is None else wall_time - first)
        if code is not None:
            return code, None
        process_tree.kill_tree(proc.pid)
        return proc.wait(), f"exceeded max_wall_time of {wall_time:g}s and was killed"

    # -- files ---------------------------------------------------------------------------
    def read_file(self, job_id: str, task_id: str, name: str, offset: int = 0,
                  length: int = _READ_LIMIT) -> FileChunk | None:
        """Bytes of a task file from ``offset`` and its size; None while it does not exist."""
        path = task_files.resolve(self.root, job_id, task_id, name)
        return task_files.read_at(path, offset, min(length, _READ_LIMIT))

    def read_files(self, reads: list[tuple[str, str, str, int]], budget: int = _READ_LIMIT) -> list[FileChunk | None]:
        """``read_file`` of each ``(job, task, name, offset)``, in order, in one call. Files are read
        whole (up to the read limit) until ``budget`` bytes are read, then ``_BATCH_TAIL_READ`` each,
        so the answer stays bounded; a chunk shorter than its file says the rest is to be read."""
        out: list[FileChunk | None] = []
        for job_id, task_id, name, offset in reads:
            chunk = self.read_file(job_id, task_id, name, offset, length=max(_BATCH_TAIL_READ, budget))
            budget -= len(chunk.data) if chunk is not None else 0
            out.append(chunk)
        return out

    def forget_job(self, job_id: str) -> None:
        """A deleted job's files leave this node: out of the way at once, removed when it is idle."""
        if task_files.retire_job(self.root, job_id) is not None:
            self.janitor.wake.set()

    def _idle(self) -> bool:
        with self.lock:
            return not (self.runs or self.queue or self.running or self.rank_procs)

    def shutdown(self) -> None:
        """Kill every running task (pool delete)."""
        with self.lock:
            self.queue.clear()
            procs = list(self.running.values()) + [p for ps in self.rank_procs.values() for p in ps]
        for proc in procs:
            process_tree.kill_tree(proc.pid, grace=2.0)

    # -- events --------------------------------------------------------------------------
    def _emit(self, run: TaskRun, state: str, *, exit_code: int | None = None, error: str | None = None) -> None:
        event = TaskEvent(job_id=run.job_id, task_id=run.task_id, attempt=run.attempt, state=state,
                          node=self.index, time=time.time(), exit_code=exit_code, error=error)
        with self.lock:
            self.outbox.append(event)
            self.lock.notify_all()

    def _gather(self) -> None:
        """Let events gather before a report: ``_FLUSH_SECONDS``, then on while at least
        ``_QUEUE_BUSY`` queued attempts keep the node busy, up to ``_FLUSH_BUSY_SECONDS`` in all:
        a node running many short tasks reports a few times a second, not after every task."""
        time.sleep(_FLUSH_SECONDS)
        deadline = time.monotonic() + _FLUSH_BUSY_SECONDS - _FLUSH_SECONDS
        while len(self.queue) >= _QUEUE_BUSY and time.monotonic() < deadline:
            time.sleep(_FLUSH_SECONDS)

    def _manager(self) -> Any:
        """The pool manager's handle, looked up again after it failed (it may have restarted)."""
        if self.manager is None:
            self.manager = ray.get_actor(self.manager_name, namespace=self.namespace)
        return self.manager

    def _flush_loop(self) -> None:
        """Send batched events until the manager acknowledges each batch (it journals first)."""
        batch: list[TaskEvent] = []
        while True:
            with self.lock:
                while not self.outbox and not batch:
                    self.lock.wait()
            self._gather()
            with self.lock:
                batch, self.outbox = coalesce(batch + self.outbox), []
            try:
                ray.get(self._manager().report.remote(batch), timeout=_REPORT_TIMEOUT)
                batch = []
            except Exception:  # the manager is restarting or unreachable: keep the batch, look it up again
                self.manager = None
                time.sleep(_RETRY_SECONDS)
