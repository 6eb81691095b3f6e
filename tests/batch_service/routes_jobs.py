"""Job routes: ``/jobs`` create/list/get/update/delete, terminate, disable/enable and task counts."""
from __future__ import annotations

from typing import Any

from .body_checks import check_enum
from .conditions import check_conditions
from .context import ServiceContext
from .http_messages import Request, Response
from .listing import list_response
from .responses import created, entity, status_only
from .routing import Router


def task_counts(tasks: list[Any]) -> dict[str, dict[str, int]]:
    """``taskCounts`` and ``taskSlotCounts`` of a job's tasks (preparing counts as running)."""
    counts = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
    slots = dict(counts)
    for task in tasks:
        buckets = [{"active": "active", "preparing": "running", "running": "running"}.get(task.state, "completed")]
        if task.state == "completed":
            buckets.append("succeeded" if task.succeeded() else "failed")
        for bucket in buckets:
            counts[bucket] += 1
            slots[bucket] += task.required_slots
    return {"taskCounts": counts, "taskSlotCounts": slots}


class JobRoutes:
    """Handlers of the job operations."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.state = ctx.state

    def register(self, router: Router) -> None:
        """Add the job routes to ``router``."""
        router.add("POST", "/jobs", self.create)
        router.add("GET", "/jobs", self.list)
        router.add("GET", "/jobs/{jobId}", self.get)
        router.add("PATCH", "/jobs/{jobId}", self.patch)
        router.add("PUT", "/jobs/{jobId}", self.replace)
        router.add("DELETE", "/jobs/{jobId}", self.delete)
        router.add("POST", "/jobs/{jobId}/terminate", self.terminate)
        router.add("POST", "/jobs/{jobId}/disable", self.disable)
        router.add("POST", "/jobs/{jobId}/enable", self.enable)
        router.add("GET", "/jobs/{jobId}/taskcounts", self.counts)

    def create(self, request: Request) -> Response:
        job = self.ctx.jobs.create_job(request.json_object())
        return created(job.revision, job.url(self.state.base_url))

    def list(self, request: Request) -> Response:
        with self.state.lock:
            items = [self.state.jobs[key].to_json(self.state.base_url) for key in sorted(self.state.jobs)]
        return list_response(request, items, metadata_name="jobs", max_page_size=self.state.settings.max_page_size)

    def get(self, request: Request) -> Response:
        with self.state.lock:
            job = self.state.job(request.path_params["jobId"])
            check_conditions(request, job.revision, is_read=True)
            url = job.url(self.state.base_url)
            return entity(request, job.to_json(self.state.base_url), job.revision, url, "jobs/@Element")

    def patch(self, request: Request) -> Response:
        return self._update(request, replace=False)

    def replace(self, request: Request) -> Response:
        return self._update(request, replace=True)

    def _update(self, request: Request, *, replace: bool) -> Response:
        body = request.json_object()
        job_id = request.path_params["jobId"]
        with self.state.lock:
            check_conditions(request, self.state.job(job_id).revision, is_read=False)
            job = self.ctx.jobs.update_job(job_id, body, replace=replace)
            return status_only(200, job.revision, job.url(self.state.base_url))

    def delete(self, request: Request) -> Response:
        job_id = request.path_params["jobId"]
        with self.state.lock:
            check_conditions(request, self.state.job(job_id).revision, is_read=False)
            self.ctx.jobs.delete_job(job_id)
        return status_only(202)

    def terminate(self, request: Request) -> Response:
        body = request.json_object() if request.body else {}
        job_id = request.path_params["jobId"]
        with self.state.lock:
            check_conditions(request, self.state.job(job_id).revision, is_read=False)
            self.ctx.jobs.terminate_job(job_id, body.get("terminateReason"))
            job = self.state.job(job_id)
            return status_only(202, job.revision, job.url(self.state.base_url))

    def disable(self, request: Request) -> Response:
        option = check_enum(request.json_object(), "disableTasks", ("requeue", "terminate", "wait")) or "requeue"
        self.ctx.jobs.disable_job(request.path_params["jobId"], option)
        return status_only(202)

    def enable(self, request: Request) -> Response:
        self.ctx.jobs.enable_job(request.path_params["jobId"])
        return status_only(202)

    def counts(self, request: Request) -> Response:
        with self.state.lock:
            job = self.state.job(request.path_params["jobId"])
            body = task_counts(list(job.tasks.values()))
        return Response.json(200, {"odata.metadata": f"{request.base_url}/$metadata#taskcounts/@Element", **body})
