"""Task routes: add, add collection, list, get, update, terminate, delete, subtasks."""
from __future__ import annotations

from .body_checks import check_duration, check_int, check_object
from .conditions import check_conditions
from .context import ServiceContext
from .errors import BatchApiError
from .http_messages import Request, Response
from .listing import list_response
from .responses import created, entity, status_only
from .routing import Router
from .task_intake import add_task, add_task_collection


class TaskRoutes:
    """Handlers of the task operations."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.state = ctx.state

    def register(self, router: Router) -> None:
        """Add the task routes to ``router``."""
        router.add("POST", "/jobs/{jobId}/tasks", self.add)
        router.add("GET", "/jobs/{jobId}/tasks", self.list)
        router.add("POST", "/jobs/{jobId}/addtaskcollection", self.add_collection)
        router.add("GET", "/jobs/{jobId}/tasks/{taskId}", self.get)
        router.add("PUT", "/jobs/{jobId}/tasks/{taskId}", self.replace)
        router.add("DELETE", "/jobs/{jobId}/tasks/{taskId}", self.delete)
        router.add("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", self.terminate)
        router.add("GET", "/jobs/{jobId}/tasks/{taskId}/subtasksinfo", self.subtasks)

    def add(self, request: Request) -> Response:
        task = add_task(self.state, request.path_params["jobId"], request.json_object())
        return created(task.revision, task.url(self.state.base_url))

    def add_collection(self, request: Request) -> Response:
        results = add_task_collection(self.state, request.path_params["jobId"], request.json_object(),
                                      request.request_id)
        metadata = f"{request.base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.TaskAddCollectionResult"
        return Response.json(200, {"odata.metadata": metadata, "value": results})

    def list(self, request: Request) -> Response:
        with self.state.lock:
            job = self.state.job(request.path_params["jobId"])
            items = [job.tasks[key].to_json(self.state.base_url) for key in sorted(job.tasks)]
        return list_response(request, items, metadata_name="tasks", max_page_size=self.state.settings.max_page_size)

    def get(self, request: Request) -> Response:
        with self.state.lock:
            task = self.state.task(request.path_params["jobId"], request.path_params["taskId"])
            check_conditions(request, task.revision, is_read=True)
            url = task.url(self.state.base_url)
            return entity(request, task.to_json(self.state.base_url), task.revision, url, "tasks/@Element")

    def replace(self, request: Request) -> Response:
        """Update the task's constraints (the only property Batch lets you change)."""
        body = request.json_object()
        constraints = check_object(body, "constraints") or {}
        check_duration(constraints, "maxWallClockTime", "constraints.")
        check_duration(constraints, "retentionTime", "constraints.")
        check_int(constraints, "maxTaskRetryCount", minimum=-1, prefix="constraints.")
        with self.state.lock:
            task = self.state.task(request.path_params["jobId"], request.path_params["taskId"])
            check_conditions(request, task.revision, is_read=False)
            if task.state == "completed":
                raise BatchApiError("TaskCompleted", values=[("TaskId", task.id)])
            task.spec["constraints"] = {**(task.spec.get("constraints") or {}), **constraints}
            task.revision.touch()
            return status_only(200, task.revision, task.url(self.state.base_url))

    def delete(self, request: Request) -> Response:
        params = request.path_params
        with self.state.lock:
            check_conditions(request, self.state.task(params["jobId"], params["taskId"]).revision, is_read=False)
        self.ctx.jobs.delete_task(params["jobId"], params["taskId"])
        return status_only(200)

    def terminate(self, request: Request) -> Response:
        params = request.path_params
        with self.state.lock:
            check_conditions(request, self.state.task(params["jobId"], params["taskId"]).revision, is_read=False)
            self.ctx.jobs.terminate_task(params["jobId"], params["taskId"])
            task = self.state.task(params["jobId"], params["taskId"])
            return status_only(204, task.revision, task.url(self.state.base_url))

    def subtasks(self, request: Request) -> Response:
        with self.state.lock:
            task = self.state.task(request.path_params["jobId"], request.path_params["taskId"])
            items = [subtask.to_json() for subtask in task.subtasks]
        metadata = f"{request.base_url}/$metadata#subtaskinfo"
        return Response.json(200, {"odata.metadata": metadata, "value": items})
