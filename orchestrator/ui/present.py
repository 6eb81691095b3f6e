"""The dashboard's JSON shapes of the runtime nouns (``orchestrator.model``), with secrets redacted.

Money comes from ``cost_view`` (over ``orchestrator.cost``): a pool's spend since it was created,
burn rate, budgets and autostop; a job's and a task's spend. A figure that is not known (no
ledger, no price) is ``None`` with a ``cost_note`` saying why, so the page never shows a made-up 0.
A task's ``attempts`` are its ended attempts as the backend keeps them (number, state, why it
ended, node, exit code, times), oldest first.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from orchestrator.errors import redact
from orchestrator.model import AttemptInfo, JobInfo, NodeInfo, PoolInfo, TaskInfo
from orchestrator.records.job_index import JobEntry
from orchestrator.ui.cost_view import PoolMoney, pool_fields


def node(info: NodeInfo) -> dict[str, Any]:
    return {"id": info.id, "address": info.address, "state": info.state, "cpus": info.cpus, "gpus": info.gpus,
            "free_slots": info.free_slots, "running_tasks": info.running_tasks}


def pool(info: PoolInfo, money: PoolMoney, *, now: float | None = None) -> dict[str, Any]:
    """A pool with its nodes, node states counted, slots in use (running tasks) and free, and its
    money (``cost_view.pool_fields``)."""
    return {"id": info.id, "backend": info.backend, "state": info.state, "address": info.address,
            "detail": redact(info.detail) or "", "target_nodes": info.target_nodes,
            "nodes": [node(n) for n in info.nodes], "node_states": dict(Counter(n.state for n in info.nodes)),
            "slots_in_use": sum(n.running_tasks for n in info.nodes), "free_slots": info.free_slots,
            **pool_fields(info, money, time.time() if now is None else now)}


def job(info: JobInfo, entry: JobEntry | None, money: PoolMoney) -> dict[str, Any]:
    """A job with its task counts by state and ``spend`` (USD; None with ``cost_note``); sweeps also
    carry their objective and planned trials."""
    return {"id": info.id, "pool_id": info.pool_id, "state": info.state, "created_at": info.created_at,
            "ended_at": info.ended_at, "task_counts": dict(info.task_counts), "total": info.total_tasks,
            "finished": info.finished, "kind": entry.kind if entry else "job",
            "objective": entry.objective if entry else None, "planned_trials": entry.trials if entry else None,
            "spend": money.job_usd(info.id), "cost_note": money.note}


def task(info: TaskInfo, *, cost: float | None = None, now: float | None = None) -> dict[str, Any]:
    """A task as a table row: state, retries, exit code, node, times, ``cost`` (USD, None when not
    known), error (redacted), parameters."""
    end = info.ended_at or (now or time.time()) if info.started_at else None
    return {"id": info.id, "job_id": info.job_id, "state": info.state.value, "exit_code": info.exit_code,
            "node_id": info.node_id, "started_at": info.started_at, "ended_at": info.ended_at,
            "seconds": round(end - info.started_at, 3) if end and info.started_at else None,
            "retries": info.retries, "cost": cost, "error": redact(info.error), "params": _plain(dict(info.params)),
            "attempts": [attempt(a) for a in info.attempts]}


def attempt(info: AttemptInfo) -> dict[str, Any]:
    """One ended attempt; ``reason`` says why it ended (a preempted one: requeued, not a retry)."""
    return {"number": info.number, "state": info.state, "reason": redact(info.error), "node_id": info.node_id,
            "exit_code": info.exit_code, "started_at": info.started_at, "ended_at": info.ended_at}


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values (numbers, strings, booleans; anything else as its text)."""
    return {str(k): v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in params.items()}
