"""Messages between Ray node agents and the pool manager."""
from __future__ import annotations


def test_agent_events_fold_running_into_a_later_end() -> None:
    from orchestrator.backends.ray.messages import TaskEvent, coalesce

    events = [TaskEvent("j", "a", 0, "running", 0, 1.0), TaskEvent("j", "b", 0, "running", 0, 1.5),
              TaskEvent("j", "a", 0, "succeeded", 0, 2.0, exit_code=0)]
    folded = coalesce(events)
    assert [(e.task_id, e.state, e.started) for e in folded] == [("b", "running", None), ("a", "succeeded", 1.0)]
