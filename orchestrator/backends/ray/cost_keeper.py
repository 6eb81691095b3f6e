"""The pool manager's cost side: the ledger it writes, the budgets it keeps, the idle pool it stops.

- **Ledger** (``ledger``): every time the manager journals a change (``observe``, from its
  ``_persist``) the keeper notes which nodes joined or left and which attempts started or ended
  on which nodes (a gang on each of its nodes), with their CPUs and GPUs. Notes are buffered and
  written by the keeper's thread once a second, with a heartbeat (``seen_at``) every few
  seconds. A node's time starts when its raylet started (a local cluster) or when the pool took
  it (a cluster at ``ray.address``). A keeper started over a ledger whose writer went silent (the
  pool went down) ends its open rows at their last sighting; attempts the journal has but the
  ledger lacks (written less than a second before a crash) are added from the journal.
- **Budgets**: a job's ``limits.budget``, a sweep task's ``limits.budget`` (set by ``set_budgets``,
  kept in the journal) and the pool's ``max_spend`` (since the pool was created, idle time
  included) are measured every ``TICK_SECONDS`` from the ledger as the keeper holds it (ended
  holds plus running ones up to now). A scope at its limit is exhausted for good: its running
  tasks are stopped and pending ones never start (``stop_exhausted``, before each dispatch), all
  ending ``stopped`` with an error that names the budget.
- **Autostop**: with ``idle_timeout``, once no task was pending or running for that long the
  keeper stops the pool (``PoolStopper``). ``keep_awake`` (called before each submission) counts
  as activity, so a submission never races the stop.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.backends.ray import ledger as ledger_ops
from orchestrator.backends.ray.ledger import (
    FILE,
    LedgerStore,
    Op,
    writer_alive,
)
from orchestrator.backends.ray.usage import HoldRow, NodeRow, share
from orchestrator.cost.budgets import sweep_of
from orchestrator.model import Resources, TaskState
from orchestrator.spec.money import format_money

if TYPE_CHECKING:
    from orchestrator.backends.ray.job_state import JobRecord
    from orchestrator.backends.ray.journal import AttemptRow, Journal
    from orchestrator.backends.ray.scheduling import NodeShare

log = logging.getLogger("orch.costs")
TICK_SECONDS = 0.5
FLUSH_SECONDS = 1.0
Who = tuple[str, str, int]  # (job, task, attempt)
Scope = tuple[str, str | None]  # (job, sweep task or None for the whole job); ("", None) is the pool


@dataclass(frozen=True)
class CostSettings:
    """What the manager needs to keep costs (from the pool spec and record; see ``pool_ops``).

    ``ledger_dir``: where the ledger lies (a local cluster's under ``$ORCH_HOME``; None: beside
    the journal). ``address`` and ``orch_home``: for the detached stopper of a local cluster."""

    price_per_node_hour: float | None = None
    max_spend: float | None = None
    idle_timeout: float | None = None
    autodelete: bool = False
    created_at: float = 0.0
    local_cluster: bool = False
    ledger_dir: str | None = None
    address: str | None = None
    orch_home: str | None = None


@dataclass
class OpenHold:
    node_key: str
    start: float
    share: float
    price: float


@dataclass
class OpenNode:
    key: str
    joined_at: float
    price: float
    cpus: float
    gpus: float


class CostKeeper:
    """See the module docstring. ``observe``, ``measure``, ``due_stops`` and ``keep_awake`` run
    under the manager's lock; ``flush`` and ``rows`` need no lock of the manager's."""

    def __init__(self, pool_id: str, settings: CostSettings, journal: Journal) -> None:
        self.pool_id, self.settings, self.journal = pool_id, settings, journal
        root = Path(settings.ledger_dir) if settings.ledger_dir else journal.root
        self.store = LedgerStore(root / FILE)
        self.pending: list[Op] = []
        self.pending_lock = threading.Lock()
        self.open_nodes: dict[tuple[str, int], OpenNode] = {}
        self.open_holds: dict[Who, list[OpenHold]] = {}
        self.recorded: set[Who] = set()
        self.closed: dict[str, dict[str, float]] = {}  # job -> task -> USD of ended holds
        self.pool_closed = 0.0  # USD of ended node time since the pool was created
        self.budgets: dict[str, tuple[float | None, dict[str, float]]] = dict(journal.value("budgets") or {})
        self.exhausted: dict[Scope, str] = {}
        self.sweep_of_task: dict[tuple[str, str], str | None] = {}
        stopped = journal.value("stopped") or {}
        self.stopped_at: float | None = stopped.get("at")
        self.deleted = bool(stopped.get("deleted"))
        self.stopping = False
        self.last_activity = time.time()
        self._load()

    # -- the ledger as it was ---------------------------------------------------------------
    def _load(self) -> None:
        now = time.time()
        nodes = self.store.nodes()
        if not writer_alive(nodes, now):
            self.store.close_open(now)  # the pool went down: open rows end at their last sighting
            nodes = self.store.nodes()
        by_key = {node.key: node for node in nodes}
        for node in nodes:
            price = node.price or 0.0
            if node.left_at is None:
                self.open_nodes[parse_key(node.key)] = OpenNode(node.key, node.joined_at, price, node.cpus, node.gpus)
            elif node.left_at > self.settings.created_at:
                self.pool_closed += (node.left_at - max(node.joined_at, self.settings.created_at)) / 3600 * price
        latest = 0.0
        for hold in self.store.holds():
            who = (hold.job_id, hold.task_id, hold.attempt)
            self.recorded.add(who)
            node = by_key.get(hold.node_key)
            share, price = (node.share_of(hold.cpus, hold.gpus), node.price or 0.0) if node else (0.0, 0.0)
            if hold.ended_at is None:
                self.open_holds.setdefault(who, []).append(OpenHold(hold.node_key, hold.started_at, share, price))
            else:
                self._add_closed(hold.job_id, hold.task_id, (hold.ended_at - hold.started_at) / 3600 * share * price)
                latest = max(latest, hold.ended_at)
        # idle since the last attempt ended (or the pool's nodes joined); a pool that came up again: now
        self.last_activity = max([latest] + [n.joined_at for n in self.open_nodes.values()]) if self.open_nodes else now

    def recover(self, jobs: Iterable[JobRecord]) -> None:
        """Add the ended attempts the journal has and the ledger lacks (noted less than a flush
        before the manager died), on the node that had that index when the attempt started."""
        rows = self.store.nodes()
        ops: list[Op] = []
        for job in jobs:
            for task_id, record in job.tasks.items():
                for attempt in record.history:
                    who = (job.id, task_id, attempt.attempt)
                    if who in self.recorded or None in (attempt.started_at, attempt.ended_at, attempt.node):
                        continue
                    start, end = float(attempt.started_at), float(attempt.ended_at)  # type: ignore[arg-type]
                    node = next((n for n in rows if n.index == attempt.node and n.joined_at <= start
                                 and (n.left_at is None or start <= n.left_at)), None)
                    if node is None:
                        continue
                    cpus, gpus = record.launch.resources.cpus, record.launch.resources.gpus
                    ops.append((ledger_ops.ADD_HOLD, (job.id, task_id, attempt.attempt, node.key, cpus, gpus, start, end)))
                    self.recorded.add(who)
                    self._add_closed(job.id, task_id, (end - start) / 3600 * node.share_of(cpus, gpus) * (node.price or 0))
        if ops:
            self.store.write(ops)

    def _add_closed(self, job_id: str, task_id: str, usd: float) -> None:
        tasks = self.closed.setdefault(job_id, {})
        tasks[task_id] = tasks.get(task_id, 0.0) + usd

    # -- noting changes (under the manager's lock) ---------------------------------------------
    def observe(self, nodes: list[NodeShare], jobs: Iterable[JobRecord],
                gang_nodes: dict[tuple[str, str], list[int]]) -> None:
        """Note nodes that joined or left and attempts that started or ended since the last call."""
        now = time.time()
        ops: list[Op] = []
        self._observe_nodes(nodes, now, ops)
        keys = [self._node_key(node) for node in nodes]
        for job in jobs:
            for task_id, row in job.ended_attempts:
                self._ended(job, task_id, row, keys, ops)
            for task_id in job.changed:
                record = job.tasks[task_id]
                if record.state == TaskState.RUNNING and record.started_at is not None \
                        and (job.id, task_id, record.attempt) not in self.open_holds:
                    where = gang_nodes.get((job.id, task_id)) or ([record.node] if record.node is not None else [])
                    self._started(job.id, task_id, record.attempt, record.started_at, record.launch.resources,
                                  [keys[i] for i in where if 0 <= i < len(keys) and keys[i]], ops)
        if ops:
            with self.pending_lock:
                self.pending += ops

    def _node_key(self, node: NodeShare) -> str | None:
        state = self.open_nodes.get((node.facts.node_id, node.facts.index))
        return state.key if state is not None and not node.down else None

    def _observe_nodes(self, nodes: list[NodeShare], now: float, ops: list[Op]) -> None:
        up = {(node.facts.node_id, node.facts.index): node for node in nodes if not node.down}
        for ident in [ident for ident in self.open_nodes if ident not in up]:
            state = self.open_nodes.pop(ident)
            ops.append((ledger_ops.CLOSE_NODE, (now, now, state.key)))
            if now > self.settings.created_at:
                self.pool_closed += (now - max(state.joined_at, self.settings.created_at)) / 3600 * state.price
        for ident, node in up.items():
            if ident in self.open_nodes:
                continue
            started = node.facts.extra.get("node_started") if node.facts.extra else None
            joined = float(started) if self.settings.local_cluster and started else now
            key = f"{ident[0]}/{ident[1]}@{int(joined * 1000)}"
            price = self.settings.price_per_node_hour
            self.open_nodes[ident] = OpenNode(key, joined, price or 0.0, node.facts.cpus, node.facts.gpus)
            ops.append((ledger_ops.OPEN_NODE, (key, ident[1], node.facts.cpus, node.facts.gpus, price, joined, now)))

    def _started(self, job_id: str, task_id: str, attempt: int, when: float, resources: Resources,
                 keys: list[str], ops: list[Op]) -> None:
        holds = []
        for key in keys:
            node = next(n for n in self.open_nodes.values() if n.key == key)
            held = share(resources.cpus, resources.gpus, node_cpus=node.cpus, node_gpus=node.gpus)
            holds.append(OpenHold(key, when, held, node.price))
            ops.append((ledger_ops.OPEN_HOLD, (job_id, task_id, attempt, key, resources.cpus, resources.gpus, when)))
        self.open_holds[(job_id, task_id, attempt)] = holds
        self.recorded.add((job_id, task_id, attempt))

    def _ended(self, job: JobRecord, task_id: str, row: AttemptRow, keys: list[str | None], ops: list[Op]) -> None:
        who = (job.id, task_id, row.attempt)
        end = row.ended_at or time.time()
        self.last_activity = max(self.last_activity, end)
        holds = self.open_holds.pop(who, None)
        if holds is None and row.started_at is not None and who not in self.recorded:
            node = row.node if row.node is not None and 0 <= row.node < len(keys) else None
            key = keys[node] if node is not None else None
            if key is not None:  # started and ended between two journal writes
                self._started(job.id, task_id, row.attempt, row.started_at, job.tasks[task_id].launch.resources,
                              [key], ops)
                holds = self.open_holds.pop(who)
        for hold in holds or []:
            ops.append((ledger_ops.CLOSE_HOLD, (max(end, hold.start), job.id, task_id, row.attempt, hold.node_key)))
            self._add_closed(job.id, task_id, max(0.0, end - hold.start) / 3600 * hold.share * hold.price)

    # -- writing -----------------------------------------------------------------------------
    def flush(self, *, heartbeat: bool = False) -> None:
        """Write the noted changes (and a heartbeat) in one transaction."""
        with self.pending_lock:
            ops, self.pending = self.pending, []
        if heartbeat:
            ops.append((ledger_ops.HEARTBEAT, (time.time(),)))
        if ops:
            self.store.write(ops)

    def rows(self) -> tuple[list[NodeRow], list[HoldRow], float]:
        """Everything the ledger holds, as of now (for a CLI that cannot read the file)."""
        self.flush(heartbeat=True)
        return self.store.nodes(), self.store.holds(), time.time()

    # -- budgets -----------------------------------------------------------------------------
    def set_budgets(self, job_id: str, budget: float | None, sweeps: dict[str, float]) -> None:
        if budget is None and not sweeps:
            return
        self.budgets[job_id] = (budget, dict(sweeps))
        self.sweep_of_task = {key: base for key, base in self.sweep_of_task.items() if key[0] != job_id}
        self.journal.set_value("budgets", self.budgets)

    def in_scope(self, job_id: str, task_id: str, sweep: str | None) -> bool:
        """Whether the task counts against the budget of ``sweep`` (None: the whole job)."""
        if sweep is None:
            return True
        key = (job_id, task_id)
        if key not in self.sweep_of_task:
            bases = self.budgets.get(job_id, (None, {}))[1]
            self.sweep_of_task[key] = sweep_of(task_id, bases)
        return self.sweep_of_task[key] == sweep

    def spent(self, job_id: str, sweep: str | None, now: float) -> tuple[float, float]:
        """USD the job (or one of its sweeps) spent, ended holds and running ones up to ``now``, and
        the USD per second it spends now."""
        total = sum(usd for task_id, usd in self.closed.get(job_id, {}).items()
                    if self.in_scope(job_id, task_id, sweep))
        rate = 0.0
        for (job, task_id, _), holds in self.open_holds.items():
            if job == job_id and self.in_scope(job_id, task_id, sweep):
                total += sum(max(0.0, now - h.start) / 3600 * h.share * h.price for h in holds)
                rate += sum(h.share * h.price / 3600 for h in holds)
        return total, rate

    def pool_spent(self, now: float) -> tuple[float, float]:
        """USD of the pool's node time since it was created, idle included, up to ``now``, and the
        USD per second it spends now."""
        since = self.settings.created_at
        total = self.pool_closed + sum(max(0.0, now - max(n.joined_at, since)) / 3600 * n.price
                                       for n in self.open_nodes.values())
        return total, sum(n.price / 3600 for n in self.open_nodes.values())

    def measure(self, now: float) -> float | None:
        """Mark the scopes that reached their limit (exhausted for good); returns when the next
        one will, at the rates of now (None: none is spending)."""
        scopes: list[tuple[Scope, float, tuple[float, float], str]] = []
        if self.settings.max_spend is not None and ("", None) not in self.exhausted:
            scopes.append((("", None), self.settings.max_spend, self.pool_spent(now),
                           f"pool {self.pool_id} spent {{}} of its max_spend {{}}"))
        for job_id, (budget, sweeps) in self.budgets.items():
            if budget is not None and (job_id, None) not in self.exhausted:
                scopes.append(((job_id, None), budget, self.spent(job_id, None, now),
                               f"job {job_id} spent {{}} of its limits.budget {{}}"))
            scopes += [((job_id, sweep), amount, self.spent(job_id, sweep, now),
                        f"sweep {sweep} of job {job_id} spent {{}} of its limits.budget {{}}")
                       for sweep, amount in sweeps.items() if (job_id, sweep) not in self.exhausted]
        due: float | None = None
        for scope, limit, (spent, rate), text in scopes:
            if spent >= limit:
                self.exhausted[scope] = "budget: " + text.format(format_money(spent), format_money(limit))
            elif rate > 0:
                due = min(due or float("inf"), now + (limit - spent) / rate)
        return due

    def due_stops(self, jobs: dict[str, JobRecord], *, ready_only: bool = False) -> list[tuple[str, list[str], str]]:
        """Tasks of exhausted scopes not yet stopped: (job, task ids, reason). ``ready_only``: only
        those about to be placed (cheap enough for every dispatch)."""
        out = []
        for (job_id, sweep), reason in self.exhausted.items():
            for job in ([jobs[job_id]] if job_id in jobs else []) if job_id else list(jobs.values()):
                candidates = list(job.ready) if ready_only else list(job.tasks)
                ids = [task_id for task_id in candidates
                       if not job.tasks[task_id].state.is_terminal() and task_id not in job.stop_requested
                       and self.in_scope(job.id, task_id, sweep)]
                if ids:
                    out.append((job.id, ids, reason))
        return out

    # -- idleness ----------------------------------------------------------------------------
    def keep_awake(self) -> str:
        """``running`` (and counts as activity), ``stopping``, ``stopped`` or ``deleted``."""
        if self.stopped_at is not None:
            return "deleted" if self.deleted else "stopped"
        if self.stopping:
            return "stopping"
        self.last_activity = max(self.last_activity, time.time())
        return "running"

    def stops_at(self, busy: int) -> float | None:
        """When the pool stops itself if it stays idle (None: busy, stopped, or no idle_timeout)."""
        if self.settings.idle_timeout is None or busy or self.stopped_at is not None or self.stopping:
            return None
        return self.last_activity + self.settings.idle_timeout

    def mark_stopped(self, at: float | None) -> None:
        """Journal that the pool stopped itself (``at``) or runs again (None)."""
        self.stopped_at, self.stopping = at, False
        self.deleted = self.deleted if at is not None else False
        self.journal.set_value("stopped", {"at": at, "deleted": self.deleted} if at is not None else {})
        if at is None:
            self.last_activity = time.time()


def parse_key(key: str) -> tuple[str, int]:
    """(Ray node id, pool node index) of a ledger node key ``<node>/<index>@<ms>``."""
    node, _, rest = key.partition("/")
    return node, int(rest.partition("@")[0])
