"""Multi-node (gang) tasks on node agents: one rank process per slot on N distinct nodes.

The head node's agent coordinates: it starts Horovod's Gloo rendezvous server (or picks the
torch master port), computes every rank's argv and environment with ``orchestrator.launch.plans``,
and sends each node its ranks. Every agent runs its ranks in the task's working directory and
forwards their output, each line prefixed ``[rank N]``, to the head, which writes the task's
``stdout.txt``/``stderr.txt``. When a rank exits non-zero, the head kills every other rank
(fail fast) and the task fails with that rank's exit code and the tail of its stderr. No ssh.
"""
from __future__ import annotations

import os
import select
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from orchestrator.backends.ray import checkpoints, orphans, process_tree, task_files
from orchestrator.backends.ray.local_cluster import free_port
from orchestrator.backends.ray.messages import TaskRun
from orchestrator.backends.ray.process_marks import ProcessMark
from orchestrator.launch.plans import DistributedSpec, RankPlan, rank_plans

_FLUSH_SECONDS = 0.2
_TAIL_BYTES = 2000


@dataclass(frozen=True)
class GangRun:
    """A multi-node attempt as sent to the head agent: hosts and agent names, head first."""

    run: TaskRun
    spec: DistributedSpec
    agents: tuple[str, ...]
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class RankBatch:
    """The ranks one node runs for a gang attempt."""

    run: TaskRun
    head: str
    node_rank: int
    ranks: tuple[RankPlan, ...]


@dataclass
class GangState:
    """The head's view of one running gang attempt."""

    gang: GangRun
    expected: int
    exited: dict[int, int] = field(default_factory=dict)
    failure: tuple[int, int, str] | None = None
    cancelled: bool = False
    timed_out: bool = False
    rendezvous: Any = None
    timer: threading.Timer | None = None


class GangMixin:
    """Actor methods of ``NodeAgent`` for gang tasks (see module docstring)."""

    root: Path
    index: int
    lock: threading.Condition
    recorder: orphans.Recorder
    namespace: str

    def _gang_init(self) -> None:
        self.gangs: dict[tuple[str, str], GangState] = {}
        self.rank_procs: dict[tuple[str, str], list[subprocess.Popen[bytes]]] = {}
        self.rank_attempts: dict[tuple[str, str], int] = {}
        self.gang_savers: dict[tuple[str, str], checkpoints.Saver] = {}
        self.output_lock = threading.Lock()

    # -- head side -----------------------------------------------------------------------
    def run_gang(self, gang: GangRun) -> None:
        """Start a gang attempt (called on the head node's agent). A failure to start fails the task."""
        try:
            self._start_gang(gang)
        except Exception as exc:  # any start failure must end the attempt, never leave it hanging
            self._emit(gang.run, "failed", error=f"could not start the ranks: {exc}")  # type: ignore[attr-defined]

    def _start_gang(self, gang: GangRun) -> None:
        run, spec = gang.run, gang.spec
        procs = int(spec.processes_per_node or 1)
        rendezvous, port = None, free_port()
        if spec.launcher == "horovod":
            from orchestrator.backends.ray.horovod_rendezvous import (
                start_rendezvous_server,
            )

            rendezvous = start_rendezvous_server(list(gang.hosts), procs)
            port = rendezvous.port
        plans = rank_plans(spec, list(gang.hosts), procs, run.command, gang.hosts[0], port,
                           gpus_per_node=int(run.gpus))
        key = (run.job_id, run.task_id)
        root = task_files.task_root(self.root, run.job_id, run.task_id)
        root.mkdir(parents=True, exist_ok=True)
        for name in ("stdout.txt", "stderr.txt"):
            (root / name).write_bytes(b"")
        state = GangState(gang=gang, expected=len(plans), rendezvous=rendezvous)
        if run.wall_time:
            state.timer = threading.Timer(run.wall_time, self._gang_timeout, args=(key,))
            state.timer.daemon = True
            state.timer.start()
        with self.lock:
            self.gangs[key] = state
        head_name = gang.agents[0]
        for node_rank, agent_name in enumerate(gang.agents):
            batch = RankBatch(run=run, head=head_name, node_rank=node_rank,
                              ranks=tuple(p for p in plans if p.node_rank == node_rank))
            ray.get_actor(agent_name, namespace=self.namespace).run_ranks.remote(batch)
        self._emit(run, "running")  # type: ignore[attr-defined]

    def append_output(self, job_id: str, task_id: str, stream: str, data: bytes) -> None:
        """Append ranks' prefixed lines to the task's stdout/stderr (head node)."""
        path = task_files.task_root(self.root, job_id, task_id) / f"{stream}.txt"
        with self.output_lock, open(path, "ab") as handle:
            handle.write(data)

    def rank_exited(self, job_id: str, task_id: str, attempt: int, rank: int, code: int, tail: str) -> None:
        """A rank ended (head node). The first non-zero exit stops the whole gang."""
        key = (job_id, task_id)
        with self.lock:
            state = self.gangs.get(key)
            if state is None or state.gang.run.attempt != attempt:
                return
            state.exited[rank] = code
            first_failure = code != 0 and state.failure is None and not state.cancelled
            if first_failure:
                state.failure = (rank, code, tail)
            done = len(state.exited) == state.expected
        if first_failure:
            self._stop_gang(state)
        if done:
            self._finish_gang(key, state)

    def _gang_timeout(self, key: tuple[str, str]) -> None:
        with self.lock:
            state = self.gangs.get(key)
            if state is None:
                return
            state.timed_out = True
        self._stop_gang(state)

    def _stop_gang(self, state: GangState) -> None:
        run = state.gang.run
        for agent_name in state.gang.agents:
            ray.get_actor(agent_name, namespace=self.namespace).kill_ranks.remote(run.job_id, run.task_id)

    def _finish_gang(self, key: tuple[str, str], state: GangState) -> None:
        with self.lock:
            self.gangs.pop(key, None)
        if state.timer:
            state.timer.cancel()
        if state.rendezvous is not None:
            state.rendezvous.stop()
        run = state.gang.run
        if state.cancelled:
            self._emit(run, "cancelled")  # type: ignore[attr-defined]
        elif state.timed_out:
            self._emit(run, "failed", exit_code=None,  # type: ignore[attr-defined]
                       error=f"exceeded max_wall_time of {run.wall_time:g}s; every rank was killed")
        elif state.failure:
            rank, code, tail = state.failure
            self._emit(run, "failed", exit_code=code,  # type: ignore[attr-defined]
                       error=f"rank {rank} exited with code {code}; other ranks were stopped. stderr tail:\n{tail}")
        else:
            self._emit(run, "succeeded", exit_code=0)  # type: ignore[attr-defined]

    def cancel_gangs(self, job_id: str, task_ids: set[str] | None) -> None:
        """Mark gangs of a job cancelled (head) and kill local ranks (every node)."""
        with self.lock:
            for (job, task), state in self.gangs.items():
                if job == job_id and (task_ids is None or task in task_ids):
                    state.cancelled = True
            keys = [k for k in self.rank_procs if k[0] == job_id and (task_ids is None or k[1] in task_ids)]
        for job, task in keys:
            self.kill_ranks(job, task)

    # -- every node ----------------------------------------------------------------------
    def run_ranks(self, batch: RankBatch) -> None:
        """Start this node's ranks of a gang attempt and watch them."""
        run = batch.run
        root = task_files.task_root(self.root, run.job_id, run.task_id)
        wd, _ = self._prepare(run, root)  # type: ignore[attr-defined]
        base = self._env(run, root, wd, [])  # type: ignore[attr-defined]
        base.pop("CUDA_VISIBLE_DEVICES", None)
        head = ray.get_actor(batch.head, namespace=self.namespace)
        if batch.node_rank == 0:  # rank 0 writes checkpoints: its node restores and saves them
            saver = checkpoints.Saver(root / "checkpoint", run, self._manager)  # type: ignore[attr-defined]
            saver.restore()
            saver.start()
            self.gang_savers[(run.job_id, run.task_id)] = saver
        with self.lock:
            self.rank_attempts[(run.job_id, run.task_id)] = run.attempt
        for plan in batch.ranks:
            env = {**base, **plan.env}
            proc = subprocess.Popen(list(plan.argv), cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            note = self.recorder.started(run.job_id, run.task_id, proc.pid)
            with self.lock:
                self.rank_procs.setdefault((run.job_id, run.task_id), []).append(proc)
            threading.Thread(target=self._watch_rank, args=(run, head, plan.global_rank, proc, note),
                             daemon=True).start()

    def kill_ranks(self, job_id: str, task_id: str) -> None:
        with self.lock:
            procs = list(self.rank_procs.get((job_id, task_id), []))
        for proc in procs:
            process_tree.kill_tree(proc.pid, grace=3.0)

    def _watch_rank(self, run: TaskRun, head: Any, rank: int, proc: subprocess.Popen[bytes],
                    note: ProcessMark | None) -> None:
        tails: dict[str, bytes] = {}
        readers = [threading.Thread(target=self._forward, args=(run, head, rank, proc, stream, tails), daemon=True)
                   for stream in ("stdout", "stderr")]
        for reader in readers:
            reader.start()
        code = proc.wait()
        self.recorder.ended(note)
        for reader in readers:
            reader.join()
        with self.lock:
            procs = self.rank_procs.get((run.job_id, run.task_id), [])
            if proc in procs:
                procs.remove(proc)
            if not procs:
                self.rank_procs.pop((run.job_id, run.task_id), None)
                self.rank_attempts.pop((run.job_id, run.task_id), None)
            saver = self.gang_savers.pop((run.job_id, run.task_id), None) if not procs else None
        if saver is not None:
            saver.finish()
        tail = tails.get("stderr", b"")[-_TAIL_BYTES:].decode("utf-8", "replace")
        ray.get(head.rank_exited.remote(run.job_id, run.task_id, run.attempt, rank, code, tail))

    def _forward(self, run: TaskRun, head: Any, rank: int, proc: subprocess.Popen[bytes], stream: str,
                 tails: dict[str, bytes]) -> None:
        """Copy one pipe to the head in batches, each whole line prefixed with ``[rank N]``."""
        pipe = proc.stdout if stream == "stdout" else proc.stderr
        assert pipe is not None
        fd, prefix, partial, tail = pipe.fileno(), f"[rank {rank}] ".encode(), b"", b""
        while True:
            ready, _, _ = select.select([fd], [], [], _FLUSH_SECONDS)
            data = os.read(fd, 65536) if ready else None
            if data == b"":
                break
            if data:
                partial += data
                tail = (tail + data)[-_TAIL_BYTES:]
            if b"\n" in partial:
                *lines, partial = partial.split(b"\n")
                ray.get(head.append_output.remote(run.job_id, run.task_id, stream,
                                                  b"".join(prefix + line + b"\n" for line in lines)))
        if partial:
            ray.get(head.append_output.remote(run.job_id, run.task_id, stream, prefix + partial + b"\n"))
        tails[stream] = tail
