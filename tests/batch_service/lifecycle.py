"""State with Batch's transition bookkeeping (current/previous state and their times)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .times import format_timestamp, utc_now


@dataclass
class Lifecycle:
    """A state machine position: ``state``, when it was entered, and the one before it."""

    state: str
    transition_time: datetime = field(default_factory=utc_now)
    previous_state: str | None = None
    previous_transition_time: datetime | None = None

    def move(self, new_state: str) -> bool:
        """Enter ``new_state``; False (and no change) when already there."""
        if new_state == self.state:
            return False
        self.previous_state, self.previous_transition_time = self.state, self.transition_time
        self.state, self.transition_time = new_state, utc_now()
        return True

    def json_fields(self, *, with_previous: bool = True) -> dict[str, Any]:
        """``state``/``stateTransitionTime`` and, once there is one, ``previousState``/time."""
        fields: dict[str, Any] = {"state": self.state, "stateTransitionTime": format_timestamp(self.transition_time)}
        if with_previous and self.previous_state is not None and self.previous_transition_time is not None:
            fields["previousState"] = self.previous_state
            fields["previousStateTransitionTime"] = format_timestamp(self.previous_transition_time)
        return fields
