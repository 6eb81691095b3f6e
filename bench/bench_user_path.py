"""The user path of a 5,000-task job, side by side with ``xargs -P 2`` of the same commands.

Run: python bench/bench_user_path.py [--rounds N] [--tasks N] [--profile DIR] [--dir FOLDER]
(creates its own ORCH_HOME, under FOLDER if given, and a 2-node x 1-CPU local Ray pool, and
deletes the pool at the end)

Each round, in this order: (a) ``seq N | xargs -P 2 -n 1 true``; (b) ``orch jobs add FILE
--tail`` as a subprocess, from start to exit, for a job file of N tasks ``command: "true"`` (every
task must have succeeded: exit code 0, the final count line, and ``jobs show`` agree); (c) ``orch
validate FILE``. Phases of (b), from outside the process: until the "submitted" line on stderr
(start-up, parsing, planning, submission), the tasks' first start and last end (from ``jobs
show``), and from the last end to the exit (following's tail). The pool journals every change as
always (SQLite, synchronous=FULL). Figures are medians over rounds with their range; each
round's job is deleted after all rounds (the deletion is timed apart). ``--profile DIR`` adds one run of (b) under cProfile, saved as
``DIR/jobs_add.prof``.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.record import write_section  # noqa: E402

POOL = "bench-user"
PROFILED = """import cProfile, sys
from orchestrator.cli import main
out, sys.argv = sys.argv[1], ["orch"] + sys.argv[2:]
profile = cProfile.Profile()
try:
    profile.runcall(main)
finally:
    profile.dump_stats(out)
"""
"""``orch ARGS`` under cProfile, stats saved before it exits (``orch`` itself leaves with
``os._exit``, which a plain ``python -m cProfile`` would not live to see)."""


def orch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


def write_job(folder: Path, job_id: str, tasks: int) -> Path:
    """A job file as a user writes it: one mapping per task (workdir defaults to the config dir)."""
    path = folder / "jobs" / "many.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"id: {job_id}", f"pool: {POOL}", "tasks:"]
    lines += [f"  - id: t{index}\n    command: \"true\"" for index in range(tasks)]
    path.write_text("\n".join(lines) + "\n")
    return path


def inode_cost(folder: Path, count: int = 400) -> float:
    """Microseconds this file system takes now to create a file (median of ``count``, then removed):
    each task costs its node a few (folders, log files, links), xargs none, so the ratio moves with it."""
    probe = Path(tempfile.mkdtemp(prefix="inode-probe-", dir=folder))
    times = []
    for index in range(count):
        start = time.perf_counter()
        os.close(os.open(probe / str(index), os.O_CREAT | os.O_WRONLY, 0o600))
        times.append(time.perf_counter() - start)
    for index in range(count):
        os.unlink(probe / str(index))
    probe.rmdir()
    return statistics.median(times) * 1e6


def xargs_seconds(tasks: int) -> float:
    start = time.perf_counter()
    subprocess.run(f"seq {tasks} | xargs -P 2 -n 1 true", shell=True, check=True)
    return time.perf_counter() - start


def validate_seconds(path: Path, env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(orch_argv("validate", str(path)), env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"orch validate failed: {done.stderr}")
    return elapsed


def jobs_add_tail(path: Path, job_id: str, tasks: int, env: dict[str, str], cwd: Path,
                  prefix: list[str] | None = None) -> dict[str, float]:
    """Run ``orch jobs add FILE --tail``; seconds from its start to: the "submitted" line, the
    first task's start, the last task's end, its exit. Raises unless every task succeeded."""
    argv = (prefix or orch_argv()) + ["jobs", "add", str(path), "--tail"]
    wall_start, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marks: dict[str, float] = {}
    err_lines: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "submitted" in line and "submitted" not in marks:
                marks["submitted"] = time.perf_counter() - start
            err_lines.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out_lines = sum(1 for _ in proc.stdout)
    code = proc.wait()
    exited = time.perf_counter() - start
    reader.join()
    expected = f"job {job_id} completed: {tasks} succeeded"
    if code != 0 or not any(line.strip() == expected for line in err_lines):
        raise RuntimeError(f"orch jobs add --tail exited {code}: {''.join(err_lines)[-2000:]}")
    shown = json.loads(subprocess.run(orch_argv("jobs", "show", job_id, "-o", "json"), env=env, cwd=cwd,
                                      capture_output=True, text=True, check=True).stdout)
    states = [task["state"] for task in shown["tasks"]]
    if len(states) != tasks or set(states) != {"succeeded"} or shown["job"]["task_counts"] != {"succeeded": tasks}:
        raise RuntimeError(f"job {job_id}: {shown['job']['task_counts']}, {len(states)} tasks listed")
    first = min(task["started_at"] for task in shown["tasks"]) - wall_start
    last = max(task["ended_at"] for task in shown["tasks"]) - wall_start
    return {"total": exited, "submitted": marks.get("submitted", float("nan")), "first_started": first,
            "last_ended": last, "after_last": exited - last, "stdout_lines": out_lines}


def orch_ok(env: dict[str, str], cwd: Path, *args: str) -> None:
    done = subprocess.run(orch_argv(*args), env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"orch {' '.join(args)}: {done.stderr[-2000:]}")


def delete_job(env: dict[str, str], cwd: Path, job_id: str, timeout: float = 120.0) -> float:
    """``orch jobs delete``, then wait until the nodes removed its files (each node's janitor does
    that while it is idle), so the next round does not share the machine with the clean-up.
    Returns the seconds the clean-up took after the command."""
    orch_ok(env, cwd, "jobs", "delete", job_id, "-y")
    start = time.perf_counter()
    trash = Path(env["ORCH_HOME"]) / "state" / POOL / "nodes"
    while any(trash.glob("*/trash/*")) and time.perf_counter() - start < timeout:
        time.sleep(0.1)
    os.sync()  # and the file system has written it (with `discard`, deletes cost at the next commit)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--profile", type=Path, default=None, help="also profile one `jobs add --tail` into DIR")
    parser.add_argument("--no-record", action="store_true", help="print the figures, leave BENCHMARKS.md alone")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where ORCH_HOME (the nodes' task folders) goes: a folder on the file system to measure "
                             "(default: the system's temporary folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="orch-bench-user-", dir=args.dir))
    config = folder / "config"
    config.mkdir()
    (config / "pool.yaml").write_text(f"id: {POOL}\nnodes: 2\ncpus_per_node: 1\n")
    env = {**os.environ, "ORCH_HOME": str(folder / "home"), "ORCH_CONFIG_DIR": str(config),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    orch_ok(env, config, "pool", "create", "pool.yaml", "-q")
    rounds: list[dict[str, float]] = []
    try:
        job = write_job(config, "warmup", 200)
        jobs_add_tail(job, "warmup", 200, env, config)  # deleted with the rounds' jobs: see `delete_job`
        for index in range(args.rounds):
            job_id = f"many-{index}"
            job = write_job(config, job_id, args.tasks)
            figures = {"inode_us": inode_cost(folder), "xargs": xargs_seconds(args.tasks)}
            figures.update(jobs_add_tail(job, job_id, args.tasks, env, config))
            figures["validate"] = validate_seconds(job, env, config)
            rounds.append(figures)
            print(f"round {index + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)
        cleanup = sum(delete_job(env, config, job_id) for job_id in ["warmup"] + [f"many-{i}" for i in range(args.rounds)])
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            job = write_job(config, "profiled", args.tasks)
            jobs_add_tail(job, "profiled", args.tasks, env, config,
                          prefix=[sys.executable, "-c", PROFILED, str(args.profile / "jobs_add.prof")])
            delete_job(env, config, "profiled")
    finally:
        orch_ok(env, config, "pool", "delete", POOL, "-y", "--force", "-q")
    where = file_system(folder)
    body = render(rounds, args.tasks, cleanup, where)
    print(body)
    if not args.no_record:
        title, command = "User path: a 5,000-task job file (issue 10)", "python bench/bench_user_path.py"
        if args.dir is not None:
            title, command = f"{title}, nodes' folders on {where}", f"{command} --dir {args.dir}"
        write_section(title, command, body)


def file_system(folder: Path) -> str:
    """``<type> (<mount point>, <options>)`` of the file system holding ``folder``."""
    best = ("?", "?", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, kind, options = line.split()[:4]
            if (str(folder.resolve()) + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best[1]):
                best = (kind, point, options)
    return f"{best[0]} ({best[1]}, {best[2]})"


def render(rounds: list[dict[str, float]], tasks: int, cleanup: float, where: str) -> str:
    def span(values: list[float], unit: str = " s", digits: int = 2) -> str:
        return (f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}–"
                f"{max(values):.{digits}f}{unit})")

    def col(key: str) -> list[float]:
        return [r[key] for r in rounds]

    ratios = [r["total"] / r["xargs"] for r in rounds]
    runs = [r["last_ended"] - r["first_started"] for r in rounds]
    return "\n".join([
        f"A job file of {tasks:,} tasks (`command: \"true\"`, one mapping per task, workdir the config dir) on a "
        "2-node × 1-CPU local Ray pool (journal on: SQLite WAL, synchronous=FULL, committed before each "
        f"acknowledgement). {len(rounds)} rounds, each: xargs, then orch, then `orch validate`; median "
        "(range). Ratio: per-round orch ÷ xargs of the same round.",
        "",
        f"The nodes' task folders (and the journal) are on {where}. Each task creates files and folders on "
        "its node (its folder, `wd/`, `checkpoint/`, `stdout.txt`, `stderr.txt`, a symbolic link per top-level "
        "workdir folder; top-level workdir files are hard links, which create none); xargs creates none. Time to "
        f"create an empty file there, measured before each round (median of 400): {span(col('inode_us'), ' µs', 1)}.",
        "",
        "| figure | orch | baseline | ratio | target |",
        "|---|---|---|---|---|",
        f"| `orch jobs add FILE --tail`, start → exit (all {tasks:,} succeeded) | {span(col('total'))} | "
        f"`xargs -P 2` {span(col('xargs'))} | {span(ratios, '×')} | ≤ 2× (aim ≤ 1.5×) |",
        f"| `orch validate FILE` | {span(col('validate'))} | | | |",
        "",
        "Phases of `jobs add --tail` (seconds from its start):",
        "",
        "| phase | median (range) |",
        "|---|---|",
        f"| \"submitted\" printed (start-up, parse, plan, workdir snapshot, submission) | {span(col('submitted'))} |",
        f"| first task started | {span(col('first_started'))} |",
        f"| last task ended | {span(col('last_ended'))} |",
        f"| first start → last end (running the tasks) | {span(runs)} |",
        f"| last task ended → exit (following's tail) | {span(col('after_last'))} |",
        "",
        f"Each round's job is kept until all rounds ran; then `orch jobs delete` of the {len(rounds)} jobs"
        f" ({len(rounds) * tasks:,} task folders; moved aside at once, removed by the idle nodes, then a `sync`)"
        f" took {cleanup:.1f} s in all. On this machine's ext4 (mounted with `discard`), rounds run right after"
        " such a removal were slower, so the bench keeps removal out of the rounds and reports it here.",
    ])


if __name__ == "__main__":
    main()
