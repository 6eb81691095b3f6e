"""The detached stopper: stops an idle local cluster from inside it, with no orch CLI running.

The pool manager lives in the cluster it must stop, so it cannot do the stopping itself: killing
the head's raylet kills the manager halfway. It starts this module instead (``spawn``), as a
process that leaves the cluster's process tree at once: a new session, forked once more and the
middle process ended, so it is reparented away from the Ray worker that started it. Ray's
cleanup of a dying worker's children and ``local_cluster.stop``'s walk over the marked daemons
and their descendants therefore never reach it, and it never signals itself.

What it stops is only what the pool record proves orch started: the node daemons by their marks
(pid, start time, executable; ``local_cluster.stop``) and what they started, then task
processes recorded under the node roots (``orphans``). It checks first that the record still
describes the cluster that asked (its address), so a pool deleted and created again meanwhile is
left alone. Then it ends the ledger's open rows at the moment the processes were gone and marks
the pool stopped in its record (``stopped_at``), or, with ``autodelete``, retires the pool's
record as ``pool delete`` does. The journal stays: the next ``orch jobs add`` or ``orch pool
create`` starts the cluster again and the new manager replays it, jobs and history intact.

Run as ``python -m orchestrator.backends.ray.autostop POOL ADDRESS [--delete]`` with
``ORCH_HOME`` set; it writes what it did to ``<pool state dir>/autostop.log``.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import orchestrator
from orchestrator.backends.ray import local_cluster, orphans
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.backends.ray.ledger import FILE, LedgerStore, ledger_dir
from orchestrator.records import pool_records

log = logging.getLogger("orch.autostop")
SETTLE_SECONDS = 0.5
"""Pause before stopping, so the manager's last call (which started this) returns cleanly."""
PENDING = "autostop.pending"
STOP_GRACE = 3.0
"""Seconds the idle cluster's daemons get to exit on SIGTERM before SIGKILL (nothing runs on it)."""


def pending_marker(state_dir: Path) -> Path:
    """A file that says a stop is under way (written before the stopper starts, removed when it ends)."""
    return state_dir / PENDING


def spawn(pool_id: str, address: str, orch_home: str, *, delete: bool) -> None:
    """Start the stopper, detached (see the module docstring); returns once it is on its own."""
    marker = pending_marker(pool_records.pool_state_dir(pool_id, Path(orch_home)))
    marker.write_text(address)
    package_root = str(Path(orchestrator.__file__).resolve().parent.parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(ORCH_HOME=orch_home, PYTHONPATH=os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")])))
    argv = [sys.executable, "-m", __name__, pool_id, address, "--detach"] + (["--delete"] if delete else [])
    middle = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    middle.wait(timeout=30)  # it forks the stopper and exits at once


def stop_pool(pool_id: str, address: str, *, delete: bool) -> str:
    """Stop the pool's local cluster if its record still names ``address``; returns what was done."""
    record = pool_records.load(pool_id)
    if record is None:
        return "no record: the pool was deleted meanwhile"
    cluster = ClusterRecord.of(record)
    if not cluster.started_cluster or cluster.address != address:
        return f"the record names another cluster ({cluster.address}): left alone"
    local_cluster.stop(cluster.node_marks(), grace=STOP_GRACE)
    killed = sum(orphans.kill_recorded(root) for root in sorted((pool_records.pool_state_dir(pool_id) / "nodes").glob("*")))
    gone = time.time()
    local_cluster.remove_temp_dir(pool_records.pool_state_dir(pool_id))
    ledger = LedgerStore(ledger_dir(pool_id) / FILE)
    try:
        closed = ledger.close_open(gone)
    finally:
        ledger.close()
    if delete:
        from orchestrator.pools import forget_deleted

        forget_deleted(pool_id)
        return f"deleted (autodelete): {closed} node(s) ended in the ledger, {killed} task process(es) left behind killed"
    cluster = ClusterRecord.of(pool_records.require(pool_id))
    cluster.stopped_at = gone
    cluster.save()
    return f"stopped: {closed} node(s) ended in the ledger, {killed} task process(es) left behind killed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orch-autostop", description=__doc__)
    parser.add_argument("pool")
    parser.add_argument("address")
    parser.add_argument("--delete", action="store_true")
    parser.add_argument("--detach", action="store_true", help="fork, and stop from the child (see spawn)")
    args = parser.parse_args(argv)
    if args.detach and os.fork() > 0:
        os._exit(0)  # the middle process: its child is now on its own
    state_dir = pool_records.pool_state_dir(args.pool)
    state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=state_dir / "autostop.log", level=logging.INFO,
                        format="%(asctime)s %(process)d %(message)s")
    log.info("pool %s: stopper started at %.3f", args.pool, time.time())
    time.sleep(SETTLE_SECONDS)
    try:
        log.info("pool %s: %s at %.3f", args.pool, stop_pool(args.pool, args.address, delete=args.delete), time.time())
    except Exception:
        log.exception("pool %s: stopping failed", args.pool)
        return 1
    finally:
        pending_marker(state_dir).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
