"""Walking-skeleton figures: CLI start-up, 5,000-task throughput vs xargs -P 2, first-task latency.

Run: python bench/bench_skeleton.py  (starts and deletes its own local Ray pool)
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_section  # noqa: E402

TASKS = 5000
ROUNDS = 3


def median_wall(argv: list[str], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup() -> tuple[float, float]:
    orch = str(Path(sys.executable).with_name("orch"))
    return median_wall([orch, "--help"]), median_wall([sys.executable, "-c", "pass"])


def xargs_baseline() -> float:
    start = time.perf_counter()
    subprocess.run(f"seq {TASKS} | xargs -P 2 -n 1 true", shell=True, check=True)
    return time.perf_counter() - start


def orch_run(job_id: str, tasks: list[dict]) -> tuple[float, float]:
    """(seconds from submit to the last task done, seconds from the submit call to the first task running).

    The first task usually starts before ``submit`` returns, so the latency is taken from the
    start of the call: an upper bound of "returning → running".
    """
    from orchestrator.backend import load_backend
    from orchestrator.model import JobRef
    from orchestrator.spec.job import JobSpec
    from orchestrator.submit import submit_job

    backend, ref = load_backend("ray"), JobRef("bench", job_id)
    job = JobSpec.model_validate({"id": job_id, "pool": "bench", "workdir": None, "tasks": tasks})
    start = time.time()
    submit_job(job, config_dir=Path.cwd())
    while not (info := backend.get_job(ref)) or not info.finished:
        time.sleep(0.02)
    done = time.time()
    first = min(t.started_at for t in backend.list_tasks(ref) if t.started_at)
    return done - start, max(0.0, first - start)


def main() -> None:
    os.environ.setdefault("ORCH_HOME", tempfile.mkdtemp(prefix="orch-bench-"))
    from orchestrator import pools
    from orchestrator.spec.pool import PoolSpec

    help_s, pass_s = startup()
    pools.create_pool(PoolSpec.model_validate({"id": "bench", "nodes": 1, "cpus_per_node": 2}))
    try:
        orch_run("warmup", [{"command": "true"} for _ in range(200)])
        pairs = []  # (xargs, orch) side by side, ROUNDS times
        for index in range(ROUNDS):
            baseline = xargs_baseline()
            pairs.append((baseline, orch_run(f"bulk{index}", [{"id": f"t{i}", "command": "true"}
                                                              for i in range(TASKS)])[0]))
        latencies = [orch_run(f"first{i}", [{"command": "true"}])[1] for i in range(5)]
    finally:
        pools.delete_pool("bench", force=True)
    first_s = statistics.median(latencies)
    ratios = [o / x for x, o in pairs]

    def span(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    body = f"""
| figure | orch | baseline | ratio | target |
|---|---|---|---|---|
| `orch --help` median wall time | {help_s*1000:.0f} ms | `python -c pass` {pass_s*1000:.0f} ms | {help_s/pass_s:.2f}× | ≤ 3× |
| {TASKS} × `true` on a 2-CPU local pool, submit → last task done ({ROUNDS} rounds: median (range)) | {span([o for _, o in pairs], ".2f")} s | `xargs -P 2` {span([x for x, _ in pairs], ".2f")} s | {span(ratios, ".2f")}× | ≤ 2× |
| submit call start → first task running (median of 5; bounds `jobs add` returning → running) | {first_s*1000:.0f} ms | | | ≤ 1 s |
"""
    write_section("Walking skeleton (issue 2)", "python bench/bench_skeleton.py", body)
    print(body)


if __name__ == "__main__":
    main()
