"""Sweep figures: streamed expansion of 1,000,000 random trials (rate, peak memory), and 200 trials
of a 0.1 s command on a 2-CPU local pool against `xargs -P 2` and Ray Tune 2.60 in the same run.

Run: python bench/bench_sweep.py  (starts and deletes its own local Ray pool; Ray Tune runs in a
child process with its own local Ray instance, before the pool exists, so they never share CPUs)
"""
from __future__ import annotations

import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_section  # noqa: E402

EXPANDED = 1_000_000
TRIALS = 200
COMMAND_SECONDS = 0.1
EXPANSION_SPEC = f"""id: expand
pool: bench
workdir: null
tasks:
  - id: trial
    command: python train.py --lr {{{{lr}}}} --batch-size {{{{bs}}}} --dropout {{{{dropout}}}}
    search_space:
      lr: {{loguniform: [0.0001, 0.5]}}
      bs: {{choice: [16, 32, 64, 128]}}
      dropout: {{uniform: [0, 0.5]}}
    sampling: random
    limits: {{max_total_trials: {EXPANDED}}}
"""
TUNE_SCRIPT = f"""
import json, logging, os, subprocess, sys, tempfile, time
import ray
from ray import tune

def trial(config):
    subprocess.run(["sleep", "{COMMAND_SECONDS}"], check=True)
    tune.report({{"done": 1}})

ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
tuner = tune.Tuner(tune.with_resources(trial, {{"cpu": 1}}), param_space={{"i": tune.randint(0, 10**6)}},
                   tune_config=tune.TuneConfig(num_samples={TRIALS}, max_concurrent_trials=2),
                   run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0))
start = time.perf_counter()
results = tuner.fit()
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "errors": len(results.errors), "trials": len(results)}}))
"""


def write_spec(text: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="orch-bench-sweep-"))
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


def expansion_in_process(spec: Path) -> tuple[float, float, float]:
    """(trials per second, tracemalloc peak KiB while streaming, ru_maxrss MiB) like ``orch sweep --dry-run``."""
    from orchestrator.plan import dry_run_launches
    from orchestrator.spec.loader import load_job

    job = load_job(spec)

    def stream(sink: io.TextIOBase) -> int:
        count = 0
        for launch in dry_run_launches(job):
            sink.write(json.dumps({"id": launch.id, "params": dict(launch.params), "command": launch.command}) + "\n")
            count += 1
        return count

    with open(os.devnull, "w") as sink:
        start = time.perf_counter()
        count = stream(sink)
        rate = count / (time.perf_counter() - start)
        tracemalloc.start()
        stream(sink)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert count == EXPANDED
    return rate, peak / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def expansion_cli(spec: Path) -> tuple[float, float]:
    """(seconds, max RSS MiB) of ``orch sweep FILE --dry-run > /dev/null`` under ``/usr/bin/time -v``."""
    orch = str(Path(sys.executable).with_name("orch"))
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        done = subprocess.run(["/usr/bin/time", "-v", orch, "sweep", str(spec), "--dry-run"], stdout=sink,
                              stderr=subprocess.PIPE, text=True, check=True)
    seconds = time.perf_counter() - start
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return seconds, rss_kib / 1024


def xargs_seconds() -> float:
    start = time.perf_counter()
    subprocess.run(f"seq {TRIALS} | xargs -P 2 -I{{}} sleep {COMMAND_SECONDS}", shell=True, check=True)
    return time.perf_counter() - start


def tune_seconds() -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-c", TUNE_SCRIPT], env=env, capture_output=True, text=True, check=True,
                          timeout=1800)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["trials"] == TRIALS and result["errors"] == 0, result
    return float(result["seconds"])


def orch_seconds(job_id: str) -> float:
    """Submit → last trial done for a 200-trial grid sweep of ``sleep 0.1`` (as ``orch sweep`` does)."""
    from orchestrator.backend import load_backend
    from orchestrator.model import JobRef
    from orchestrator.spec.loader import load_job
    from orchestrator.submit import submit_job

    spec = write_spec(f"""id: {job_id}
pool: bench
workdir: null
tasks:
  - id: trial
    command: "sleep {COMMAND_SECONDS}; : {{{{i}}}}"
    search_space: {{i: {{randint: [0, {TRIALS}]}}}}
""")
    job = load_job(spec)
    backend = load_backend("ray")
    start = time.perf_counter()
    submit_job(job, config_dir=spec.parent)
    while not (info := backend.get_job(JobRef("bench", job_id))) or not info.finished:
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    assert info.task_counts.get("succeeded") == TRIALS, info.task_counts
    return seconds


def main() -> None:
    os.environ.setdefault("ORCH_HOME", tempfile.mkdtemp(prefix="orch-bench-"))
    spec = write_spec(EXPANSION_SPEC)
    rate, traced_kib, maxrss_mib = expansion_in_process(spec)
    cli_s, cli_rss_mib = expansion_cli(spec)
    xargs_s = xargs_seconds()
    tune_s = tune_seconds()
    from orchestrator import pools
    from orchestrator.spec.pool import PoolSpec

    pools.create_pool(PoolSpec.model_validate({"id": "bench", "nodes": 1, "cpus_per_node": 2}))
    try:
        orch_s = min(orch_seconds("sweep-a"), orch_seconds("sweep-b"))
    finally:
        pools.delete_pool("bench", force=True)
    xargs_s = min(xargs_s, xargs_seconds())
    body = f"""
| figure | orch | baseline | ratio | target |
|---|---|---|---|---|
| {EXPANDED:,} random trials streamed as `--dry-run` JSON lines, in process | {rate:,.0f} trials/s | | | |
| same: tracemalloc peak while streaming / whole process ru_maxrss | {traced_kib:.0f} KiB / {maxrss_mib:.0f} MiB | | | < 200 MB |
| `orch sweep FILE --dry-run > /dev/null`, {EXPANDED:,} trials: wall / max RSS (`/usr/bin/time -v`) | {cli_s:.1f} s / {cli_rss_mib:.0f} MiB | | | < 200 MB |
| {TRIALS} trials of `sleep {COMMAND_SECONDS}` on a 2-CPU local pool, submit → last trial done (best of 2) | {orch_s:.2f} s | `xargs -P 2` {xargs_s:.2f} s | {orch_s / xargs_s:.2f}× | ≤ 1.2× |
| same {TRIALS} trials as a Ray Tune 2.60 function trainable (1 CPU each, 2 at once), `fit()` | | Ray Tune {tune_s:.1f} s | orch is {tune_s / orch_s:.1f}× faster | |

Reference figures measured before orch existed: xargs 10.2 s, plain Ray tasks 11.0 s, Ray Tune 200 s.
"""
    write_section("Sweeps", "python bench/bench_sweep.py", body)
    print(body)


if __name__ == "__main__":
    main()
