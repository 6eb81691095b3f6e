"""The dashboard's web application: HTML pages, a JSON API, server-sent log streams, static files.

Handlers are thin: they parse the request, ask ``state.Dashboard`` and shape the answer with
``present``. Synchronous handlers run in Starlette's worker threads (backend calls block).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator.errors import (
    AuthError,
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    OrchError,
    SpecError,
    redact,
)
from orchestrator.model import JobInfo, TaskState
from orchestrator.ui import pages, present
from orchestrator.ui.access import Access
from orchestrator.ui.guard import Guard
from orchestrator.ui.logs import DEFAULT_POLL_CAP, log_events
from orchestrator.ui.state import Dashboard

STATIC = Path(__file__).resolve().parent / "static"
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
LOG_FILES = ("stdout", "stderr", "metrics")
STATUS_OF: tuple[tuple[type[OrchError], int], ...] = (
    (NotFoundError, 404), (SpecError, 400), (ConflictError, 409), (BackendUnavailableError, 503), (AuthError, 502))


def error_response(exc: OrchError) -> JSONResponse:
    status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 502)
    return JSONResponse({"error": redact(exc.message), "hint": redact(exc.hint)}, status_code=status)


class Api:
    """The JSON endpoints, over one ``Dashboard``."""

    def __init__(self, dashboard: Dashboard, access: Access, poll_cap: float) -> None:
        self.dash, self.access, self.poll_cap = dashboard, access, poll_cap

    def overview(self, request: Request) -> dict[str, Any]:
        return {"pools": self.pools(request), "jobs": self.jobs(request), "unreachable": self.dash.unreachable()}

    def pools(self, request: Request) -> list[dict[str, Any]]:
        return [present.pool(info, self.dash.money(info.id)) for info in self.dash.pools()]

    def pool(self, request: Request) -> dict[str, Any]:
        pool_id = request.path_params["pool_id"]
        jobs = [self._job(info) for info in self.dash.jobs() if info.pool_id == pool_id]
        return {**present.pool(self.dash.pool(pool_id), self.dash.money(pool_id)), "jobs": jobs}

    def jobs(self, request: Request) -> list[dict[str, Any]]:
        return [self._job(info) for info in reversed(self.dash.jobs())]

    def _job(self, info: JobInfo) -> dict[str, Any]:
        return present.job(info, self.dash.entry(info.id), self.dash.money(info.pool_id))

    def job(self, request: Request) -> dict[str, Any]:
        job_id = request.path_params["job_id"]
        info = self._job(self.dash.job(job_id))
        controller = None if info["finished"] else self.dash.controller(job_id)
        return {**info, "controller": _controller(controller), "states": [state.value for state in TaskState]}

    def tasks(self, request: Request) -> dict[str, Any]:
        """One page of the job's tasks: ``state`` (a state or empty), ``q`` (id contains), ``offset``, ``limit``."""
        job_id, query = request.path_params["job_id"], request.query_params
        state, text = query.get("state", ""), query.get("q", "").strip()
        if state and state not in {s.value for s in TaskState}:
            raise SpecError(f"unknown state {state!r}", hint=f"use one of: {', '.join(s.value for s in TaskState)}")
        offset, limit = _int(query.get("offset"), 0, 0), min(_int(query.get("limit"), PAGE_SIZE, 1), MAX_PAGE_SIZE)
        tasks = self.dash.tasks(job_id)
        matched = [t for t in tasks if (not state or t.state.value == state) and (not text or text in t.id)]
        money = self.dash.job_money(job_id)
        return {"total": len(tasks), "matched": len(matched), "offset": offset, "limit": limit,
                "cost_note": money.note,
                "tasks": [present.task(t, cost=money.task_usd(job_id, t.id)) for t in matched[offset:offset + limit]]}

    def task(self, request: Request) -> dict[str, Any]:
        job_id, task_id = request.path_params["job_id"], request.path_params["task_id"]
        cost = self.dash.job_money(job_id).task_usd(job_id, task_id)
        return {**present.task(self.dash.task(job_id, task_id), cost=cost), "job": self.job(request)}

    def sweep(self, request: Request) -> dict[str, Any]:
        job_id, query = request.path_params["job_id"], request.query_params
        goal = query.get("goal") or None
        if goal not in (None, "maximize", "minimize"):
            raise SpecError(f"unknown goal {goal!r}", hint="use maximize or minimize")
        return self.dash.sweep(job_id, query.get("metric") or None, goal)

    def cancel(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        job_id = request.path_params["job_id"]
        _confirmed(body, job_id, "job")
        self.dash.cancel(job_id)
        return {"cancelled": job_id}

    def delete_pool(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        pool_id = request.path_params["pool_id"]
        _confirmed(body, pool_id, "pool")
        self.dash.delete_pool(pool_id, force=body.get("force") is True)
        return {"deleted": pool_id}

    async def logs(self, request: Request) -> Response:
        job_id, task_id = request.path_params["job_id"], request.path_params["task_id"]
        name = request.query_params.get("file", "stdout")
        if name not in LOG_FILES:
            raise SpecError(f"unknown file {name!r}", hint=f"use one of: {', '.join(LOG_FILES)}")
        from anyio import to_thread

        await to_thread.run_sync(self.dash.task, job_id, task_id)  # 404 before the stream starts
        offset = _int(request.headers.get("last-event-id"), 0, 0)
        return StreamingResponse(log_events(self.dash, job_id, task_id, name, offset=offset, poll_cap=self.poll_cap),
                                 media_type="text/event-stream", headers={"x-accel-buffering": "no"})


def _controller(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The controller summary's plain fields (its error text redacted)."""
    if state is None:
        return None
    return {"running": bool(state.get("running")), "passes": state.get("passes", 0),
            "sealed": bool(state.get("sealed")), "last_error": redact(state.get("last_error"))}


def _confirmed(body: dict[str, Any], name: str, kind: str) -> None:
    if body.get("confirm") != name:
        raise SpecError(f"the {kind} to act on was not confirmed", hint=f'send {{"confirm": "{name}"}}')


def _int(text: str | None, default: int, minimum: int) -> int:
    try:
        return max(minimum, int(text)) if text not in (None, "") else default
    except ValueError:
        raise SpecError(f"not a whole number: {text!r}") from None


def _json_endpoint(method: Any) -> Any:
    def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(method(request))
        except OrchError as exc:
            return error_response(exc)
    return endpoint


def _action_endpoint(method: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        from anyio import to_thread

        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        try:
            return JSONResponse(await to_thread.run_sync(method, request, body))
        except OrchError as exc:
            return error_response(exc)
    return endpoint


def _stream_endpoint(method: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await method(request)  # type: ignore[no-any-return]
        except OrchError as exc:
            return error_response(exc)
    return endpoint


def _page_endpoint(access: Access, dashboard: Dashboard, name: str) -> Any:
    """The page's HTML; for a job's pages, the job's tasks (and a sweep's metrics) are read right
    after it is sent, while the browser loads the scripts that will ask for them."""
    def endpoint(request: Request) -> Response:
        job_id = request.path_params.get("job_id")
        warm = BackgroundTask(_warm, dashboard, job_id, name == "sweep") if job_id else None
        return HTMLResponse(pages.render(name, request.path_params, csrf=access.csrf, actions=access.allow_actions),
                            background=warm)
    return endpoint


def _warm(dashboard: Dashboard, job_id: str, sweep: bool) -> None:
    try:
        dashboard.sweep(job_id) if sweep else dashboard.tasks(job_id)
    except OrchError:
        pass  # the page's own requests will show the error


def create_app(dashboard: Dashboard, access: Access, *, poll_cap: float = DEFAULT_POLL_CAP) -> Guard:
    """The application, behind the access guard."""
    api = Api(dashboard, access, poll_cap)
    routes = [
        Route("/", _page_endpoint(access, dashboard, "overview")),
        Route("/pools/{pool_id}", _page_endpoint(access, dashboard, "pool")),
        Route("/jobs/{job_id}", _page_endpoint(access, dashboard, "job")),
        Route("/jobs/{job_id}/tasks/{task_id}", _page_endpoint(access, dashboard, "task")),
        Route("/sweeps/{job_id}", _page_endpoint(access, dashboard, "sweep")),
        Route("/api/overview", _json_endpoint(api.overview)),
        Route("/api/pools", _json_endpoint(api.pools)),
        Route("/api/pools/{pool_id}", _json_endpoint(api.pool)),
        Route("/api/pools/{pool_id}/delete", _action_endpoint(api.delete_pool), methods=["POST"]),
        Route("/api/jobs", _json_endpoint(api.jobs)),
        Route("/api/jobs/{job_id}", _json_endpoint(api.job)),
        Route("/api/jobs/{job_id}/cancel", _action_endpoint(api.cancel), methods=["POST"]),
        Route("/api/jobs/{job_id}/tasks", _json_endpoint(api.tasks)),
        Route("/api/jobs/{job_id}/tasks/{task_id}", _json_endpoint(api.task)),
        Route("/api/jobs/{job_id}/tasks/{task_id}/logs", _stream_endpoint(api.logs)),
        Route("/api/sweeps/{job_id}", _json_endpoint(api.sweep)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Guard(Starlette(routes=routes), access)
