"""The Azure cost ledger: node time rebuilt from observations of Batch's records, priced and shared
out to tasks (pure); and end to end, the ledger's total against node time x price from the local
Batch service's own record of every node, within 1 %, after the pool stopped itself and after it
was deleted."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import pools
from orchestrator.backends.azure import ledger, vm_sizes
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.ledger_model import (
    AttemptSeen,
    Book,
    NodeSeen,
    Observation,
    Prices,
    dumps,
    loads,
)
from orchestrator.backends.azure.ledger_store import LedgerStore, LocalShelf
from orchestrator.backends.azure.retries import RetryPolicy
from orchestrator.model import JobRef, UsageSpan
from orchestrator.spec.pool import PoolSpec
from tests.batch_service import (
    BatchService,
    NodeLife,
    quick_autoscale,
    start_batch_service,
)
from tests.support.azurite import Azurite, start_azurite
from tests.support.batch_sdk import wait_for
from tests.support.jobs import job_spec

PRICES = Prices(dedicated=2.0, spot=0.5)


def seen(at: float, *nodes: NodeSeen, attempts: tuple[AttemptSeen, ...] = (), since: float | None = None,
         slots: int = 2, exists: bool = True) -> Observation:
    return Observation(at=at, writer="t", pool_exists=exists, slots_per_node=slots, allocation="steady",
                       allocation_since=since, prices=PRICES, nodes=nodes, attempts=attempts,
                       lists_nodes=exists)


def node(node_id: str, state: str = "idle", since: float = 0.0, *, dedicated: bool = True, boot: float = 1.0,
         allocated: float = 0.0) -> NodeSeen:
    return NodeSeen(node_id, dedicated, allocated, state, since, boot)


def book(*observations: Observation) -> Book:
    out = Book()
    for observation in observations:
        out.add(observation)
    return out


def cost(spans: list[UsageSpan], **match: object) -> float:
    return sum(s.cost for s in spans if all(getattr(s, key) == value for key, value in match.items()))


def test_a_gone_node_ended_when_the_pool_last_settled_and_its_time_is_split_by_task_slots() -> None:
    work = (AttemptSeen("j", "a", "n1", 100.0, 1900.0, slots=1), AttemptSeen("j", "b", "n1", 100.0, None, slots=2))
    spans = ledger.usage("p", book(seen(1000.0, node("n1"), node("n2", dedicated=False), attempts=work),
                                   seen(7200.0, node("n1"), since=3600.0)), now=7200.0)
    # n2 (Spot) left when the pool settled at 3600 s; n1 is still there at 7200 s
    assert cost(spans, node_id="n2") == pytest.approx(1.0 * 0.5) and cost(spans, node_id="n1") == pytest.approx(4.0)
    # b (running until now, 2 of 2 slots) and a overlap: the node is shared out, never more than whole
    assert cost(spans, task_id="a") + cost(spans, task_id="b") + cost(spans, node_id="n1", job_id=None) \
        == pytest.approx(4.0)
    assert cost(spans, task_id="b") == pytest.approx((7100 / 3600) * 2.0 - cost(spans, task_id="a"), rel=0.01)
    assert all(s.spot == (s.node_id == "n2") for s in spans)
    clipped = ledger.usage("p", book(seen(1000.0, node("n1")), seen(7200.0, node("n1"))), now=7200.0, since=3600.0)
    assert cost(clipped) == pytest.approx(2.0) and min(s.start for s in clipped) == 3600.0


def test_preempted_time_is_not_billed_and_replaced_attempts_end_where_the_next_began() -> None:
    spot = dict(dedicated=False)
    first = AttemptSeen("j", "t", "s1", 0.0, None)
    second = AttemptSeen("j", "t", "s2", 1800.0, 3600.0)
    spans = ledger.usage("p", book(
        seen(900.0, node("s1", "running", 10.0, **spot), node("s2", **spot), attempts=(first,), slots=1),
        seen(1200.0, node("s1", "preempted", 1000.0, **spot), node("s2", **spot), slots=1),
        seen(3600.0, node("s1", "idle", 2990.0, boot=2000.0, **spot), node("s2", **spot), attempts=(second,),
             slots=1)),
        now=3600.0)
    assert cost(spans, node_id="s1") == pytest.approx((1000 + 1600) / 3600 * 0.5)  # preempted 1000..2000
    assert cost(spans, node_id="s1", task_id="t") == pytest.approx(1000 / 3600 * 0.5)  # ran until the preemption


def test_a_deleted_pool_s_nodes_ended_when_the_deletion_was_seen_done_and_unknown_prices_cost_nothing() -> None:
    gone = ledger.usage("p", book(seen(0.0, node("n1")), seen(1800.0, exists=False)), now=9999.0)
    assert cost(gone) == pytest.approx(1.0)
    free = Observation(at=3600.0, writer="t", prices=Prices(None, None), nodes=(node("n1"),))
    assert ledger.usage("p", book(free), now=3600.0)[0].cost == 0.0


def test_observations_are_kept_once_each_and_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_HOME", str(tmp_path))
    shelf = LocalShelf("p")
    store = LedgerStore([shelf], writer="w", local=shelf)
    assert store.record(seen(1.0, node("n1"))) and not store.record(seen(2.0, node("n1")))  # nothing new
    for at in range(2, 250):
        store.record(seen(float(at), node("n1", since=float(at))))
    assert len(shelf.names()) == 249
    merged = LedgerStore([shelf], writer="reader").book()
    assert len(merged.observations) == 249 and len(shelf.names()) == 1  # compacted into one file
    assert len(LedgerStore([shelf], writer="again").book().observations) == 249
    assert loads(dumps(merged.ordered()))[0] == merged.ordered()[0]


# -- end to end ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    with start_batch_service(tmp_path_factory.mktemp("batch")) as batch, \
            start_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
        yield batch, azurite


def truth(lives: list[NodeLife], until: float) -> float:
    """Node time x list price, from the service's own record of every node it allocated."""
    size = vm_sizes.lookup("D2s_v5")
    return sum(life.billed_seconds(until) / 3600 * ((size.price_dedicated if life.dedicated else size.price_spot) or 0)
               for life in lives)


@pytest.mark.slow
def test_the_ledger_agrees_with_the_service_s_node_time_within_one_percent(
        services: tuple[BatchService, Azurite], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch, azurite = services
    monkeypatch.setenv("ORCH_HOME", str(tmp_path / "home"))
    backend = AzureBackend(credentials=Credentials.model_validate({
        "batch": {"account": batch.account, "url": batch.url, "key": batch.key},
        "storage": {"connection_string": azurite.connection_string}}), policy=RetryPolicy(base=0.01, cap=0.2))
    spec = PoolSpec.model_validate({"id": "metered", "backend": "azure", "nodes": {"dedicated": 1, "spot": 1},
                                    "idle_timeout": "2s", "azure": {"vm_size": "D2s_v5"}})
    with quick_autoscale(batch.settings, 1.0, sample_s=0.2, delay_s=0.4):
        pools.create_pool(spec, backend=backend)
        from orchestrator.submit import submit_job

        submit_job(job_spec("metered", {"id": "mixed", "tasks": [
            {"id": "one", "command": "sleep 2"}, {"id": "two", "command": "sleep 3", "resources": {"cpus": 2}},
            {"id": "three", "command": "sleep 1"}]}), config_dir=tmp_path, backend=backend)
        spot = wait_for(lambda: next((n.id for n in backend.accounts.for_pool("metered").batch.client.list_nodes(
            "metered") if not n.is_dedicated and n.running_tasks_count), None), "a busy Spot node")
        batch.preempt("metered", spot, restore_after_s=0.5)  # its task goes back to the queue
        wait_for(lambda: (info := backend.get_pool("metered")) is not None and info.state == "stopped", "autostop", 60)
        spans = list(backend.usage("metered"))
        lives = batch.node_lives("metered")
        until = max(s.end for s in spans)
        assert truth(lives, until) > 0 and sum(s.cost for s in spans) == pytest.approx(truth(lives, until), rel=0.01)
        jobs = {s.task_id for s in spans if s.job_id == "mixed"}
        assert jobs == {"one", "two", "three"} and cost(spans, job_id=None) > 0  # idle time is the pool's own
        backend.delete_job(JobRef("metered", "mixed"))
        pools.delete_pool("metered", backend=backend)
    after = list(backend.usage("metered"))  # a deleted pool keeps what orch recorded of it
    assert sum(s.cost for s in after) == pytest.approx(truth(batch.node_lives("metered"), until), rel=0.01)
    assert {s.task_id for s in after if s.job_id == "mixed"} == {"one", "two", "three"}
