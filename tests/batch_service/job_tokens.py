"""Job-scoped authentication tokens, as Batch gives a task with ``authenticationTokenSettings``.

A task whose spec asks for ``{"access": ["job"]}`` gets ``AZ_BATCH_AUTHENTICATION_TOKEN``: a
bearer token that authorizes requests on its own job (``/jobs/<job>`` and everything under it)
and nothing else. Tokens are opaque random strings, one per job, valid while the service runs.
"""
from __future__ import annotations

import secrets
import threading
from typing import Any
from urllib.parse import unquote

from .errors import BatchApiError


def wants_job_token(task_spec: dict[str, Any]) -> bool:
    """Whether a task spec asks for a job-scoped token."""
    settings = task_spec.get("authenticationTokenSettings") or {}
    return "job" in (settings.get("access") or [])


class JobTokens:
    """Issues one token per job and checks bearer requests against the job they name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[str, str] = {}
        self._jobs: dict[str, str] = {}

    def issue(self, job_id: str) -> str:
        """The job's token (created on first use)."""
        with self._lock:
            token = self._by_job.get(job_id.lower())
            if token is None:
                token = secrets.token_urlsafe(32)
                self._by_job[job_id.lower()] = token
                self._jobs[token] = job_id.lower()
            return token

    def verify(self, raw_path: str, authorization: str) -> None:
        """Return when ``Bearer <token>`` is a job token and the path lies within that job."""
        token = authorization.partition(" ")[2].strip()
        job = self._jobs.get(token)
        if job is None:
            raise BatchApiError("AuthenticationFailed", values=[("AuthenticationErrorDetail", "unknown bearer token")])
        parts = raw_path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "jobs" or unquote(parts[1]).lower() != job:
            raise BatchApiError("AuthenticationFailed", values=[
                ("AuthenticationErrorDetail", "the job token does not grant access to this resource")])
