"""The Ray pool manager's cost ledger and budgets, fast: spans from ledger rows, the keeper's notes
as the manager journals changes, and budget arithmetic. No cluster runs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.backends.ray.cost_keeper import CostKeeper, CostSettings
from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.backends.ray.journal import Journal
from orchestrator.backends.ray.ledger import FILE, LedgerStore, writer_alive
from orchestrator.backends.ray.messages import AgentFacts
from orchestrator.backends.ray.scheduling import NodeShare
from orchestrator.backends.ray.usage import HoldRow, NodeRow, spans
from orchestrator.cost.spend import summarize
from orchestrator.model import Resources, TaskLaunch, TaskState

PRICE = 3600.0  # 1 USD per node second


def node(key: str = "n0", *, cpus: float = 2, gpus: float = 0, joined: float = 0, left: float | None = 100,
         seen: float = 100, price: float | None = PRICE) -> NodeRow:
    return NodeRow(key=key, index=0, cpus=cpus, gpus=gpus, price=price, joined_at=joined, left_at=left, seen_at=seen)


def hold(task: str, start: float, end: float | None, *, cpus: float = 1, gpus: float = 0, key: str = "n0",
         attempt: int = 0) -> HoldRow:
    return HoldRow(job_id="j", task_id=task, attempt=attempt, node_key=key, cpus=cpus, gpus=gpus, started_at=start,
                   ended_at=end)


def test_a_node_s_time_is_its_tasks_shares_and_the_idle_rest() -> None:
    out = list(spans("p", [node()], [hold("a", 10, 30), hold("b", 20, 40)], now=0, alive=False))
    assert sum((s.end - s.start) * s.share for s in out) == pytest.approx(100), "all node time, no more"
    spend = summarize("p", out)
    assert spend.task("j", "a").usd == pytest.approx(10) and spend.task("j", "b").usd == pytest.approx(10)
    assert spend.idle.usd == pytest.approx(80) and spend.total.usd == pytest.approx(100)


def test_the_larger_of_cpu_and_gpu_share_counts_and_overlaps_are_scaled_to_the_node() -> None:
    gpu_node = node(cpus=8, gpus=2)
    out = list(spans("p", [gpu_node], [hold("g", 0, 100, cpus=1, gpus=1)], now=0, alive=False))
    assert summarize("p", out).task("j", "g").usd == pytest.approx(50)
    crowded = list(spans("p", [node(cpus=1)], [hold("a", 0, 100), hold("b", 0, 100)], now=0, alive=False))
    spend = summarize("p", crowded)
    assert spend.task("j", "a").usd == pytest.approx(50) and spend.idle.usd == pytest.approx(0)


def test_open_rows_run_to_now_while_the_writer_lives_else_to_the_last_sighting() -> None:
    rows = [node(left=None, seen=50)]
    alive = summarize("p", spans("p", rows, [hold("a", 10, None)], now=80, alive=True))
    dead = summarize("p", spans("p", rows, [hold("a", 10, None)], now=80, alive=False))
    assert alive.total.usd == pytest.approx(80) and alive.task("j", "a").usd == pytest.approx(35)
    assert dead.total.usd == pytest.approx(50) and dead.task("j", "a").usd == pytest.approx(20)
    assert writer_alive(rows, now=60) and not writer_alive(rows, now=80)
    assert summarize("p", spans("p", [node(price=None)], [], now=0, alive=False)).total.unpriced_hours > 0


def test_closing_a_ledger_ends_its_rows_but_never_long_after_their_last_sighting(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / FILE)
    store.write([("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, NULL, ?)", ("fresh", 0, 1, 0, PRICE, 0, 100)),
                 ("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, NULL, ?)", ("stale", 1, 1, 0, PRICE, 0, 10)),
                 ("INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", ("j", "t", 0, "stale", 1, 0, 5))])
    assert store.close_open(104) == 2
    left = {row.key: row.left_at for row in store.nodes()}
    assert left == {"fresh": 104, "stale": 25}, "a node not heard from for long ends soon after it was last seen"
    assert store.holds()[0].ended_at == 25


# -- the keeper -----------------------------------------------------------------------------------
class Pool:
    """A manager's state without Ray: nodes, jobs, gangs, and the keeper that notes them."""

    def __init__(self, root: Path, **settings: object) -> None:
        self.journal = Journal(root / "journal")
        self.settings = CostSettings(price_per_node_hour=PRICE, ledger_dir=str(root / "ledger"), local_cluster=True,
                                     **settings)  # type: ignore[arg-type]
        self.keeper = CostKeeper("p", self.settings, self.journal)
        started = time.time() - 10
        self.nodes = [NodeShare(facts=AgentFacts(index=i, node_id=f"ray{i}", address="127.0.0.1", cpus=1, gpus=0,
                                                 extra={"node_started": started}), handle=None, name=f"a{i}")
                      for i in range(2)]
        self.jobs: dict[str, JobRecord] = {}
        self.gangs: dict[tuple[str, str], list[int]] = {}

    def job(self, job_id: str, task_ids: list[str]) -> JobRecord:
        record = self.jobs[job_id] = JobRecord(id=job_id, pool_id="p", created_at=time.time())
        record.add([TaskLaunch(id=task_id, command="true", resources=Resources(cpus=1)) for task_id in task_ids])
        return record

    def observe(self) -> None:
        self.keeper.observe(self.nodes, self.jobs.values(), self.gangs)
        for record in self.jobs.values():  # what persist_changes does after the keeper looked
            record.changed.clear()
            record.new.clear()
            record.ended_attempts.clear()

    def run(self, job: JobRecord, task_id: str, node: int, start: float, end: float | None) -> None:
        job.ready.remove(task_id)  # as the scheduler places it
        job.dispatched(task_id, node)
        job.started(task_id, 0, node, start)
        self.observe()
        if end is not None:
            job.ended(task_id, 0, "succeeded", 0, None, end, node)
            self.observe()

    def spend(self, now: float | None = None):  # type: ignore[no-untyped-def]
        self.keeper.flush(heartbeat=True)
        nodes, holds = self.keeper.store.nodes(), self.keeper.store.holds()
        return summarize("p", spans("p", nodes, holds, now=now or time.time(), alive=True))


def test_the_keeper_notes_nodes_from_their_start_and_attempts_on_their_nodes(tmp_path: Path) -> None:
    pool = Pool(tmp_path)
    now = time.time()
    job = pool.job("j", ["t0", "t1", "t2"])
    pool.run(job, "t0", 0, now - 8, now - 6)
    pool.run(job, "t1", 1, now - 5, None)
    job.ready.remove("t2")
    job.dispatched("t2", 0)  # started and ended between two journal writes
    job.started("t2", 0, 0, now - 4)
    job.ended("t2", 0, "failed", 1, None, now - 3, 0)
    pool.observe()
    spend = pool.spend(now)
    assert spend.total.usd == pytest.approx(20, abs=0.05), "two nodes since their raylets started 10 s ago"
    assert spend.task("j", "t0").usd == pytest.approx(2) and spend.task("j", "t2").usd == pytest.approx(1)
    assert spend.task("j", "t1").usd == pytest.approx(5, abs=0.05), "a running attempt counts up to now"
    assert pool.keeper.spent("j", None, now) == (pytest.approx(8, abs=0.05), pytest.approx(1))


def test_a_lost_node_leaves_the_ledger_and_a_restarted_keeper_resumes_it(tmp_path: Path) -> None:
    pool = Pool(tmp_path)
    pool.observe()
    pool.nodes[1].down = True
    pool.observe()
    pool.keeper.flush(heartbeat=True)
    rows = {row.index: row for row in pool.keeper.store.nodes()}
    assert rows[1].left_at is not None and rows[0].left_at is None
    again = CostKeeper("p", pool.settings, pool.journal)  # the manager restarted; its writer was alive
    assert list(again.open_nodes) == [("ray0", 0)]


def test_budgets_exhaust_their_scope_for_good_and_say_when_the_next_is_due(tmp_path: Path) -> None:
    pool = Pool(tmp_path, max_spend=1000.0)
    now = time.time()
    job = pool.job("j", [f"trial-0000{index}" for index in range(4)])
    pool.keeper.set_budgets("j", None, {"trial": 5.0})
    pool.run(job, "trial-00000", 0, now - 4, now - 1)
    pool.run(job, "trial-00001", 1, now - 1, None)
    due = pool.keeper.measure(now)
    assert not pool.keeper.exhausted and due == pytest.approx(now + 1, abs=0.05)
    assert pool.keeper.measure(now + 1.5) is not None and ("j", "trial") in pool.keeper.exhausted
    stops = pool.keeper.due_stops(pool.jobs)
    assert stops == [("j", ["trial-00001", "trial-00002", "trial-00003"],
                      pool.keeper.exhausted[("j", "trial")])]
    assert "budget: sweep trial of job j spent" in stops[0][2]
    assert pool.keeper.due_stops(pool.jobs, ready_only=True)[0][1] == ["trial-00002", "trial-00003"]
    running = job.stop(stops[0][1], stops[0][2])
    assert running == ["trial-00001"] and job.tasks["trial-00002"].state == TaskState.STOPPED
    assert job.tasks["trial-00002"].error.startswith("budget:") and not job.ready  # type: ignore[union-attr]
    job.ended("trial-00001", 0, "cancelled", None, None, now + 2, 1)
    assert job.tasks["trial-00001"].state == TaskState.STOPPED and "budget" in str(job.tasks["trial-00001"].error)
    again = CostKeeper("p", pool.settings, pool.journal)
    assert again.budgets == {"j": (None, {"trial": 5.0})}, "budgets are journaled"


def test_the_idle_clock_and_keep_awake(tmp_path: Path) -> None:
    pool = Pool(tmp_path, idle_timeout=60.0)
    keeper = pool.keeper
    keeper.last_activity = 1000.0
    assert keeper.stops_at(busy=0) == 1060.0 and keeper.stops_at(busy=2) is None
    assert keeper.keep_awake() == "running" and keeper.last_activity > 1000
    keeper.stopping = True
    assert keeper.keep_awake() == "stopping" and keeper.stops_at(busy=0) is None
    keeper.deleted = True
    keeper.mark_stopped(2000.0)
    assert keeper.keep_awake() == "deleted"
    assert CostKeeper("p", pool.settings, pool.journal).stopped_at == 2000.0, "a stopped pool stays stopped"
    keeper.mark_stopped(None)
    assert keeper.keep_awake() == "running" and not keeper.deleted


def test_attempts_the_journal_has_and_the_ledger_lacks_are_recovered(tmp_path: Path) -> None:
    pool = Pool(tmp_path)
    pool.observe()
    pool.keeper.flush(heartbeat=True)
    now = time.time()
    job = pool.job("j", ["lost-note"])
    job.ready.remove("lost-note")
    job.dispatched("lost-note", 1)
    job.started("lost-note", 0, 1, now - 3)
    job.ended("lost-note", 0, "succeeded", 0, None, now - 1, 1)  # the manager died before noting it
    again = CostKeeper("p", pool.settings, pool.journal)
    again.recover(pool.jobs.values())
    held = [hold for hold in again.store.holds() if hold.task_id == "lost-note"]
    assert len(held) == 1 and held[0].node_key.startswith("ray1/1@") and held[0].ended_at == pytest.approx(now - 1)
    assert again.spent("j", None, now)[0] == pytest.approx(2, abs=0.01)
    again.recover(pool.jobs.values())
    assert len([hold for hold in again.store.holds() if hold.task_id == "lost-note"]) == 1, "once"
