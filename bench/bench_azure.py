"""Azure backend figures against the local Batch service (run in its own process) and Azurite.

1. Submitting a 10,000-trial sweep: collection requests sent, wall time, peak Python memory
   of the submitting process; once clean and once with a fifth of the collection requests
   failing (injected 500/503/429/dropped connections).
2. ``orch logs --tail`` on 4 idle tasks (the ``follow_all`` code path): Batch requests per
   second per task once idle (task file reads, and job status reads shared by all tasks), and
   the latency from a line written by a task to the follower yielding it.

    python bench/bench_azure.py [--no-record]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.record import write_section  # noqa: E402
from orchestrator import pools  # noqa: E402
from orchestrator.backends.azure.backend import AzureBackend  # noqa: E402
from orchestrator.backends.azure.credentials import Credentials  # noqa: E402
from orchestrator.follow import follow_all  # noqa: E402
from orchestrator.model import JobRef  # noqa: E402
from orchestrator.spec.job import JobSpec  # noqa: E402
from orchestrator.spec.pool import PoolSpec  # noqa: E402
from orchestrator.submit import submit_job  # noqa: E402
from tests.support.azurite import start_azurite  # noqa: E402

TRIALS = 10_000
FAULTS = [("500", 0.07, "after"), ("503", 0.07, "before"), ("drop", 0.04, "before"), ("429", 0.03, "before")]
IDLE_TASKS = 4


class Service:
    """``python -m tests.batch_service`` in a subprocess, with its admin API."""

    def __init__(self, root: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.batch_service", "--root", str(root)],
                                        cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.info = json.loads(self.process.stdout.readline())

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.info['url']}/_admin/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def requests(self, path: str = "") -> list[dict[str, Any]]:
        return list(self.admin("GET", f"requests?path={path}")["value"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def submit_sweep(backend: AzureBackend, service: Service, job_id: str, *, faults: bool = False,
                 trace_memory: bool = False) -> dict[str, Any]:
    """Submit the sweep; figures from the service's request log. With ``trace_memory`` the
    peak Python heap is traced (tracemalloc slows Python down, so times come from other runs)."""
    job = JobSpec.model_validate({"id": job_id, "pool": "parked", "workdir": None, "tasks": [
        {"id": "trial", "command": "python train.py --seed {{0}}",
         "task_factory": {"parametric_sweep": {"product": [{"start": 0, "stop": TRIALS, "step": 1}]}}}]})
    service.admin("DELETE", "requests")
    for seed, (kind, probability, timing) in enumerate(FAULTS if faults else []):
        service.admin("POST", "faults", {"kind": kind, "path": "/addtaskcollection$", "method": "POST",
                                         "probability": probability, "seed": seed, "timing": timing, "retry_after": 1})
    if trace_memory:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    report = submit_job(job, config_dir=REPO, backend=backend)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    tracemalloc.stop()
    service.admin("DELETE", "faults")
    collection = service.requests("/addtaskcollection$")
    others = [r for r in service.requests() if not r["path"].endswith("/addtaskcollection")]
    assert report.submitted + report.already_present == TRIALS and not report.failed, report
    return {"wall": wall, "cpu": cpu, "peak_mib": peak / 2**20, "collections": len(collection),
            "failed_collections": sum(1 for r in collection if r["status"] != 200), "other": len(others)}


def follow_idle_tasks(backend: AzureBackend, service: Service) -> dict[str, float]:
    script = ('echo "start"; sleep 8; for i in 1 2 3; do echo "t=$(date +%s.%N)"; sleep 4; done')
    job = JobSpec.model_validate({"id": "idle-logs", "pool": "logs", "workdir": None, "tasks": [
        {"id": f"t{i}", "command": script} for i in range(IDLE_TASKS)]})
    submit_job(job, config_dir=REPO, backend=backend)
    latencies: list[float] = []
    started: list[float] = []
    for line in follow_all(backend, JobRef("logs", "idle-logs")):
        now = time.time()
        text = line.split("] ", 1)[-1]
        if text == "start":
            started.append(now)
        elif text.startswith("t="):
            latencies.append(now - float(text[2:]))
    requests = service.requests()
    window = (max(started) + 3.0, max(started) + 7.0)  # tasks silent; backoff at its cap
    inside = [r for r in requests if window[0] <= _when(r) < window[1]]
    seconds = window[1] - window[0]
    reads = sum(1 for r in inside if "/files/" in r["path"])
    return {"reads_per_task_s": reads / seconds / IDLE_TASKS, "status_per_s": (len(inside) - reads) / seconds,
            "all_per_task_s": len(inside) / seconds / IDLE_TASKS, "latency_median": statistics.median(latencies),
            "latency_max": max(latencies), "lines": len(latencies)}


def _when(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-record", action="store_true", help="print figures without writing BENCHMARKS.md")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-azure-"))
    os.environ["ORCH_HOME"] = str(tmp / "home")
    service, azurite = Service(tmp / "batch"), start_azurite(tmp / "azurite")
    try:
        credentials = Credentials.model_validate({
            "batch": {"account": service.info["account"], "url": service.info["url"], "key": service.info["key"]},
            "storage": {"connection_string": azurite.connection_string}})
        backend = AzureBackend(credentials=credentials)
        pools.create_pool(PoolSpec.model_validate({"id": "parked", "backend": "azure", "azure": {
            "vm_size": "D2s_v5", "autoscale": {"formula": "$TargetDedicatedNodes = 0;"}}}), backend=backend)
        clean = submit_sweep(backend, service, "sweep-clean")
        faulty = submit_sweep(backend, service, "sweep-faults", faults=True)
        memory = submit_sweep(backend, service, "sweep-memory", trace_memory=True)
        pools.create_pool(PoolSpec.model_validate({"id": "logs", "backend": "azure", "nodes": 2,
                                                   "azure": {"vm_size": "D2s_v5"}}), backend=backend)
        logs = follow_idle_tasks(backend, service)
    finally:
        service.stop()
        azurite.stop()
    body = render(clean, faulty, memory["peak_mib"], logs)
    print(body)
    if not args.no_record:
        write_section("Azure backend (local Batch service)", "python bench/bench_azure.py", body)


def render(clean: dict[str, Any], faulty: dict[str, Any], peak_mib: float, logs: dict[str, float]) -> str:
    rows = [f"| {name} | {r['collections']} ({r['failed_collections']} failed) | {r['other']} | {r['wall']:.1f} s | "
            f"{r['cpu']:.1f} s |" for name, r in (("no faults", clean), ("~20% of collections fail", faulty))]
    return "\n".join([
        f"Submitting a {TRIALS:,}-trial sweep (`task_factory` parametric sweep) to a Batch job; the service runs in "
        "its own process, the pool has no nodes so nothing runs. Target: at most 101 collection requests plus "
        "a constant when nothing fails. CPU time is the submitting process's (mostly building the azure-batch "
        "request models); the local service runs in another process on the same 2 cores.",
        "",
        "| run | collection requests | other requests | wall time | orch's CPU time |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Peak Python heap of the submitting process during a third, clean submission (tracemalloc): "
        f"{peak_mib:.1f} MiB (tasks are built lazily; at most 16 collections exist at once).",
        "",
        f"`orch logs --tail` over {IDLE_TASKS} tasks that print a line, stay silent 8 s, then print a "
        "timestamped line every 4 s (`follow_all`, as `orch logs JOB --tail` runs it). Idle window: 3-7 s "
        "after the first lines. Target: at most 1 request per second per task once idle.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| task file reads per task, idle | {logs['reads_per_task_s']:.2f} /s |",
        f"| job status reads (shared by all tasks), idle | {logs['status_per_s']:.2f} /s |",
        f"| all Batch requests per task, idle | {logs['all_per_task_s']:.2f} /s |",
        f"| line written → shown, median of {int(logs['lines'])} | {logs['latency_median']:.2f} s |",
        f"| line written → shown, max | {logs['latency_max']:.2f} s |",
    ])


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
