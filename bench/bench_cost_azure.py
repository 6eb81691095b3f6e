"""The cost of idle on Azure, against the local Batch service with Batch's own timings.

A pool (one dedicated and one Spot D2s_v5 node, ``idle_timeout: 2m``) runs a finished job, then
no orch process runs (every orch command is a process that exits): Batch evaluates the pool's
autostop formula every 5 minutes (Batch's shortest ``autoScaleEvaluationInterval``) over metrics
sampled every 30 s and available a minute later, as the service models Batch. Measured from the
service's records:

1. minutes from the job's last task end (its ``endTime``) to zero nodes (the pool's allocation
   settling at zero), against the target idle_timeout + one evaluation interval;
2. the cost ledger's total (``AzureBackend.usage``) against node time x list price computed
   independently from the service's record of every node (``BatchService.node_lives``), and,
   for the dedicated node, from Batch's pool statistics (``dedicatedCoreTime``);
3. how long the stopped pool takes to run the next job's first task after ``orch jobs add``
   (wake: Batch evaluates the formula at once; the rest is allocation, here ~0.1 s; on Azure,
   minutes).

    python bench/bench_cost_azure.py [--quick] [--runs N] [--no-record]

``--quick`` scales every time down (idle_timeout 6 s, interval 3 s, samples 0.3 s, delay 0.6 s)
to check the bench in a minute; the recorded figures are from the full run (about 9 minutes).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from azure.batch import BatchClient  # noqa: E402
from azure.batch import models as m  # noqa: E402
from azure.core.credentials import AzureNamedKeyCredential  # noqa: E402

from bench.record import write_section  # noqa: E402
from orchestrator.backends.azure import vm_sizes  # noqa: E402
from orchestrator.backends.azure.backend import AzureBackend  # noqa: E402
from tests.batch_service import NodeLife, start_batch_service  # noqa: E402
from tests.support.azurite import start_azurite  # noqa: E402


@dataclass(frozen=True)
class Timing:
    idle_timeout: float
    interval: float | None  # None: the pool's own (5 minutes)
    sample: float
    delay: float
    task_seconds: float

    @property
    def evaluation(self) -> float:
        return self.interval if self.interval is not None else 300.0


FULL = Timing(idle_timeout=120, interval=None, sample=30, delay=60, task_seconds=20)
QUICK = Timing(idle_timeout=6, interval=3, sample=0.3, delay=0.6, task_seconds=2)
POOL = """id: idlebench
backend: azure
nodes: {{dedicated: 1, spot: 1}}
idle_timeout: {idle}s
azure: {{vm_size: D2s_v5}}
"""
JOB = """id: {job}
pool: idlebench
workdir: null
tasks: [{{id: a, command: sleep {s}}}, {{id: b, command: sleep {s}}}, {{id: c, command: sleep {s}}}]
"""


def orch(config: Path, home: Path, *args: str) -> None:
    env = {**os.environ, "ORCH_CONFIG_DIR": str(config), "ORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=config, env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"orch {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def wait(probe, what: str, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def truth(lives: list[NodeLife], until: float) -> float:
    size = vm_sizes.lookup("D2s_v5")
    return sum(life.billed_seconds(until) / 3600 * ((size.price_dedicated if life.dedicated else size.price_spot) or 0)
               for life in lives)


def one_run(timing: Timing, root: Path) -> dict[str, float]:
    config, home = root / "config", root / "home"
    config.mkdir()
    (config / "pool.yaml").write_text(POOL.format(idle=timing.idle_timeout))
    for job in ("first", "second"):
        (config / f"{job}.yaml").write_text(JOB.format(job=job, s=timing.task_seconds))
    with start_batch_service(root / "batch") as batch, start_azurite(root / "azurite") as azurite:
        batch.settings.update({"autoscale_interval_s": timing.interval, "autoscale_sample_period_s": timing.sample,
                               "autoscale_sample_delay_s": timing.delay})
        (config / "credentials.yaml").write_text(
            f"batch: {{account: {batch.account}, url: '{batch.url}', key: '{batch.key}'}}\n"
            f"storage: {{connection_string: '{azurite.connection_string}'}}\n")
        client = BatchClient(batch.url, AzureNamedKeyCredential(batch.account, batch.key))
        orch(config, home, "pool", "create", "pool.yaml")
        orch(config, home, "jobs", "add", "first.yaml")  # from here on no orch process runs
        ended = wait(lambda: _last_end(client, "first"), "the first job to end", 600)
        pool = wait(lambda: _at_zero(client), "the pool to stop itself", timing.idle_timeout + 3 * timing.evaluation
                    + 10 * timing.delay + 60)
        stopped_after = pool.allocation_state_transition_time.timestamp() - ended
        os.environ.update(ORCH_HOME=str(home), ORCH_CONFIG_DIR=str(config))
        backend = AzureBackend(config)
        spans = list(backend.usage("idlebench"))
        until = max(s.end for s in spans)
        ledger_total, service_total = sum(s.cost for s in spans), truth(batch.node_lives("idlebench"), until)
        batch.settings.stats_rollup_s = 0.0
        time.sleep(0.3)
        stats = client.get_pool("idlebench", expand=["stats"]).pool_statistics.usage_statistics
        dedicated = next(life for life in batch.node_lives("idlebench") if life.dedicated)
        stats_cost = stats.dedicated_core_time.total_seconds() / 2 / 3600 * (
            vm_sizes.lookup("D2s_v5").price_dedicated or 0)
        ledger_dedicated = sum(s.cost for s in spans if s.node_id == dedicated.node_id)
        submitted = time.time()
        orch(config, home, "jobs", "add", "second.yaml")
        first_start = wait(lambda: _first_start(client, "second"), "the second job to start", 600)
        return {"stopped_after": stopped_after, "ledger": ledger_total, "service": service_total,
                "stats_dedicated": stats_cost, "ledger_dedicated": ledger_dedicated,
                "restart": first_start - submitted}


def _last_end(client: BatchClient, job_id: str) -> float | None:
    tasks = list(client.list_tasks(job_id))
    if not tasks or any(t.state != m.BatchTaskState.COMPLETED for t in tasks):
        return None
    return max(t.execution_info.end_time.timestamp() for t in tasks)


def _at_zero(client: BatchClient) -> m.BatchPool | None:
    pool = client.get_pool("idlebench")
    done = (pool.current_dedicated_nodes == 0 and pool.current_low_priority_nodes == 0
            and pool.allocation_state == m.AllocationState.STEADY and not list(client.list_nodes("idlebench")))
    return pool if done else None


def _first_start(client: BatchClient, job_id: str) -> float | None:
    starts = [t.execution_info.start_time.timestamp() for t in client.list_tasks(job_id)
              if t.execution_info is not None and t.execution_info.start_time is not None]
    return min(starts) if starts else None


def report(timing: Timing, runs: list[dict[str, float]]) -> str:
    target = timing.idle_timeout + timing.evaluation
    stops = [run["stopped_after"] for run in runs]
    gaps = [abs(run["ledger"] - run["service"]) / run["service"] * 100 for run in runs]
    stat_gaps = [abs(run["ledger_dedicated"] - run["stats_dedicated"]) / run["stats_dedicated"] * 100 for run in runs]
    restarts = [run["restart"] for run in runs]
    return f"""A pool of one dedicated and one Spot D2s_v5 node with `idle_timeout: {timing.idle_timeout:g}s` runs a
job of three {timing.task_seconds:g}-second tasks submitted by `orch jobs add`; then no orch process runs. Batch's
timings as the local service models them: formula evaluated every {timing.evaluation:g} s, metrics sampled every
{timing.sample:g} s and available {timing.delay:g} s later. {len(runs)} run(s).

| figure | measured | target |
|---|---|---|
| last task end → zero nodes (service clock) | {_range(stops, 60, "min")} | ≥ idle_timeout, ≤ idle_timeout + one interval = {target / 60:.2f} min (orch's bound adds one {timing.sample:g}-s sample period) |
| ledger total vs node time × list price from the service's record of every node | {_range(gaps, 1, "%")} apart ({runs[0]["ledger"]:.5f} vs {runs[0]["service"]:.5f} USD) | within 1 % |
| ledger's dedicated node vs Batch pool statistics (`dedicatedCoreTime`) | {_range(stat_gaps, 1, "%")} apart | within 1 % |
| `orch jobs add` on the stopped pool → its first task runs | {_range(restarts, 1, "s")} | wake at once, not at the next evaluation |

The stop lands between idle_timeout and idle_timeout + one sample period + one evaluation interval after the last
task ended, where depending on when Batch's evaluation schedule falls. A restart here is the service's allocation
and boot delays; on Azure the same wake is followed by VM allocation, image boot and the start task, typically 3–10
minutes (longer for large GPU sizes or container images; Spot capacity may be missing). Without orch (a task added
by another client), the pool's next evaluation sees it: up to one interval plus the sample delay, then allocation."""


def _range(values: list[float], scale: float, unit: str) -> str:
    scaled = [value / scale for value in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.3f} {unit}"
    return f"{min(scaled):.3f}–{max(scaled):.3f} {unit} (median {statistics.median(scaled):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down times, to check the bench")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    timing = QUICK if args.quick else FULL
    runs = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="orch-bench-cost-") as folder:
            runs.append(one_run(timing, Path(folder)))
        print(f"run {index + 1}: {runs[-1]}", flush=True)
    text = report(timing, runs)
    print(text)
    if not args.no_record and not args.quick:
        write_section("Cost control on Azure (issue 11)", f"python bench/bench_cost_azure.py --runs {args.runs}", text)


if __name__ == "__main__":
    main()
