"""Route handlers: the Batch operations orch calls, and the test-only admin API.

Pools: create, list, get (``$expand=stats``: ``node_lives``), resize, enable autoscale, delete; list
and get nodes; download a node file (relative to the node root, e.g. ``startup/stderr.txt``).
``GET /poolusagemetrics`` (Pool - List Usage Metrics) is refused: Batch retired it on 30 September
2024 (the error it answers now is not documented; this service says 400 ``InvalidUri``). Jobs: create, list, get, update (PATCH), terminate, delete.
Tasks: add (one or a collection), list, get, terminate, list a multi-instance task's subtasks (its
instances but the primary, with their nodes and times); a task file's properties (HEAD) and
(ranged) download (relative to the task directory, e.g. ``wd/out.bin``). Lists take ``$select``.

Admin (no authentication, never faulted or logged): ``POST /_admin/faults`` with ``{"kind",
"path", "method", "count", "probability", "seed", "retry_after", "timing"}`` → 201 and the rule,
``GET``/``DELETE /_admin/faults``; ``GET /_admin/requests[?method=&path=regex]`` → ``{"value":
[{method, path, status, fault, time}], "count"}``, ``DELETE`` clears; ``GET``/``POST`` (partial
update) ``/_admin/settings``; ``POST /_admin/preemptions`` with ``{"poolId", "nodeId"}`` (or ``"jobId"``
and ``"taskId"``: the node running that task; or neither: the first busy Spot node) and
``"restoreAfterSeconds"`` (null: capacity never comes back) → 201 ``{"poolId", "nodeId",
"requeuedTasks"}`` (see ``preemption``); ``GET /_admin/nodelives?poolId=`` → ``{"value": [{poolId, nodeId,
isDedicated, vcpus, allocated, removed, preempted}]}``, every node the pool ever had (``node_lives``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from .errors import BatchApiError
from .faults import FAULT_OPTIONS, FaultInjector, FaultKind, RequestLog
from .http_messages import (
    Request,
    Response,
    created,
    entity,
    list_response,
    select_fields,
    status_only,
)
from .jobs import JobEngine
from .layout import find_entry, read_range
from .node_lives import lives_of, stats_json
from .pools import PoolEngine
from .preemption import Preemptions
from .routing import Router
from .settings import ServiceSettings
from .specs import validate_terminate
from .state import BatchState

_LIST = ("$select", "$skiptoken")
_TASK = "/jobs/{jobId}/tasks/{taskId}"


class BatchRoutes:
    """Handlers of the Batch operations; path parameters are ``request.path_params``."""

    def __init__(self, state: BatchState, pools: PoolEngine, jobs: JobEngine) -> None:
        self.state, self.pools, self.jobs = state, pools, jobs

    def register(self, router: Router) -> None:
        """Add the routes to ``router``."""
        for method, template, handler, query in (
            ("POST", "/pools", self.create_pool, ()),
            ("GET", "/pools", self.list_pools, _LIST),
            ("GET", "/pools/{poolId}", self.get_pool, ("$expand",)),
            ("DELETE", "/pools/{poolId}", self.delete_pool, ()),
            ("POST", "/pools/{poolId}/resize", self.resize_pool, ()),
            ("POST", "/pools/{poolId}/enableautoscale", self.enable_autoscale, ()),
            ("GET", "/poolusagemetrics", self.retired_usage_metrics, ("starttime", "endtime", "$filter",
                                                                      "maxresults")),
            ("GET", "/pools/{poolId}/nodes", self.list_nodes, _LIST),
            ("GET", "/pools/{poolId}/nodes/{nodeId}", self.get_node, ()),
            ("GET", "/pools/{poolId}/nodes/{nodeId}/files/{filePath*}", self.download_node_file, ()),
            ("POST", "/jobs", self.create_job, ()),
            ("GET", "/jobs", self.list_jobs, _LIST),
            ("GET", "/jobs/{jobId}", self.get_job, ()),
            ("PATCH", "/jobs/{jobId}", self.update_job, ()),
            ("DELETE", "/jobs/{jobId}", self.delete_job, ()),
            ("POST", "/jobs/{jobId}/terminate", self.terminate_job, ()),
            ("POST", "/jobs/{jobId}/tasks", self.add_task, ()),
            ("GET", "/jobs/{jobId}/tasks", self.list_tasks, _LIST),
            ("POST", "/jobs/{jobId}/addtaskcollection", self.add_task_collection, ()),
            ("GET", _TASK, self.get_task, ()),
            ("POST", f"{_TASK}/terminate", self.terminate_task, ()),
            ("GET", f"{_TASK}/subtasksinfo", self.list_subtasks, ("$select",)),
            ("GET", f"{_TASK}/files/{{filePath*}}", self.download_task_file, ()),
            ("HEAD", f"{_TASK}/files/{{filePath*}}", self.task_file_properties, ()),
        ):
            router.add(method, template, handler, query)

    def _list(self, request: Request, items: list[dict[str, Any]], name: str) -> Response:
        return list_response(request, items, metadata_name=name, page_size=self.state.settings.max_page_size)

    def create_pool(self, request: Request) -> Response:
        pool = self.pools.create_pool(request.json_object())
        return created(pool.revision, pool.url(self.state.base_url))

    def list_pools(self, request: Request) -> Response:
        with self.state.lock:
            items = [self.state.pools[key].to_json(self.state.base_url) for key in sorted(self.state.pools)]
        return self._list(request, items, "pools")

    def get_pool(self, request: Request) -> Response:
        expand = [part.strip() for part in (request.param("$expand") or "").split(",") if part.strip()]
        if any(part != "stats" for part in expand):
            raise BatchApiError("InvalidQueryParameterValue", values=[
                ("QueryParameterName", "$expand"), ("QueryParameterValue", request.param("$expand") or "")])
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            url, body = pool.url(self.state.base_url), pool.to_json(self.state.base_url)
            if expand:
                body["stats"] = stats_json(pool, self.state.base_url)
            return entity(request, body, pool.revision, url, "pools/@Element")

    def enable_autoscale(self, request: Request) -> Response:
        pool = self.pools.enable_autoscale(request.path_params["poolId"], request.json_object())
        return status_only(200, pool.revision, pool.url(self.state.base_url))

    def retired_usage_metrics(self, request: Request) -> Response:
        raise BatchApiError("InvalidUri", "Pool - List Usage Metrics was retired on 30 September 2024; "
                                          "pool statistics ($expand=stats) remain.",
                            values=[("RequestUri", request.raw_path)])

    def delete_pool(self, request: Request) -> Response:
        self.pools.delete_pool(request.path_params["poolId"])
        return status_only(202)

    def resize_pool(self, request: Request) -> Response:
        self.pools.resize(request.path_params["poolId"], request.json_object())
        return status_only(202)

    def list_nodes(self, request: Request) -> Response:
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            start_task = pool.spec.get("startTask")
            items = [pool.nodes[key].to_json(self.state.base_url, start_task) for key in sorted(pool.nodes)]
        return self._list(request, items, "nodes")

    def get_node(self, request: Request) -> Response:
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            node = self.state.node(pool.id, request.path_params["nodeId"])
            body, url = node.to_json(self.state.base_url, pool.spec.get("startTask")), node.url(self.state.base_url)
        return Response.json(200, {"odata.metadata": f"{request.base_url}/$metadata#nodes/@Element", **body},
                             {"DataServiceId": url})

    def download_node_file(self, request: Request) -> Response:
        with self.state.lock:
            node = self.state.node(request.path_params["poolId"], request.path_params["nodeId"])
            root, files_url = node.root_dir, f"{node.url(self.state.base_url)}/files"
        entry = find_entry(root, request.path_params["filePath"])
        return Response(200, read_range(entry, request.header("ocp-range")), entry.headers(files_url))

    def create_job(self, request: Request) -> Response:
        job = self.jobs.create_job(request.json_object())
        return created(job.revision, job.url(self.state.base_url))

    def list_jobs(self, request: Request) -> Response:
        with self.state.lock:
            items = [self.state.jobs[key].to_json(self.state.base_url) for key in sorted(self.state.jobs)]
        return self._list(request, items, "jobs")

    def get_job(self, request: Request) -> Response:
        with self.state.lock:
            job = self.state.job(request.path_params["jobId"])
            url = job.url(self.state.base_url)
            return entity(request, job.to_json(self.state.base_url), job.revision, url, "jobs/@Element")

    def update_job(self, request: Request) -> Response:
        job = self.jobs.update_job(request.path_params["jobId"], request.json_object())
        return status_only(200, job.revision, job.url(self.state.base_url))

    def delete_job(self, request: Request) -> Response:
        self.jobs.delete_job(request.path_params["jobId"])
        return status_only(202)

    def terminate_job(self, request: Request) -> Response:
        reason = validate_terminate(request.json_object()) if request.body else None
        job = self.jobs.terminate_job(request.path_params["jobId"], reason)
        return status_only(202, job.revision, job.url(self.state.base_url))

    def add_task(self, request: Request) -> Response:
        task = self.jobs.add_task(request.path_params["jobId"], request.json_object())
        return created(task.revision, task.url(self.state.base_url))

    def add_task_collection(self, request: Request) -> Response:
        results = self.jobs.add_collection(request.path_params["jobId"], request.json_object(), request.request_id)
        metadata = f"{request.base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.TaskAddCollectionResult"
        return Response.json(200, {"odata.metadata": metadata, "value": results})

    def list_tasks(self, request: Request) -> Response:
        with self.state.lock:
            job = self.state.job(request.path_params["jobId"])
            items = [job.tasks[key].to_json(self.state.base_url) for key in sorted(job.tasks)]
        return self._list(request, items, "tasks")

    def get_task(self, request: Request) -> Response:
        with self.state.lock:
            task = self.state.task(request.path_params["jobId"], request.path_params["taskId"])
            url = task.url(self.state.base_url)
            return entity(request, task.to_json(self.state.base_url), task.revision, url, "tasks/@Element")

    def list_subtasks(self, request: Request) -> Response:
        """A multi-instance task's instances other than its primary (none for another task)."""
        with self.state.lock:
            task = self.state.task(request.path_params["jobId"], request.path_params["taskId"])
            items = [dict(subtask, nodeInfo=dict(subtask["nodeInfo"])) for subtask in task.subtasks]
        return Response.json(200, {"odata.metadata": f"{request.base_url}/$metadata#subtaskinfo",
                                   "value": [select_fields(item, request.param("$select")) for item in items]})

    def terminate_task(self, request: Request) -> Response:
        task = self.jobs.terminate_task(request.path_params["jobId"], request.path_params["taskId"])
        return status_only(204, task.revision, task.url(self.state.base_url))

    def _task_root(self, request: Request) -> tuple[Path, str]:
        """(task directory, its ``.../files`` URL); 409 TaskFilesUnavailable before the task was scheduled."""
        with self.state.lock:
            task = self.state.task(request.path_params["jobId"], request.path_params["taskId"])
            if task.task_dir is None:
                raise BatchApiError("TaskFilesUnavailable", values=[("TaskId", task.id)])
            return task.task_dir, f"{task.url(self.state.base_url)}/files"

    def download_task_file(self, request: Request) -> Response:
        root, files_url = self._task_root(request)
        entry = find_entry(root, request.path_params["filePath"])
        return Response(200, read_range(entry, request.header("ocp-range")), entry.headers(files_url))

    def task_file_properties(self, request: Request) -> Response:
        root, files_url = self._task_root(request)
        entry = find_entry(root, request.path_params["filePath"])
        return Response.empty(200, {**entry.headers(files_url), "Content-Length": str(entry.size)})


class AdminRoutes:
    """Handlers of the admin API."""

    def __init__(self, faults: FaultInjector, log: RequestLog, settings: ServiceSettings,
                 preemptions: Preemptions, state: BatchState) -> None:
        self.faults, self.log, self.settings, self.preemptions = faults, log, settings, preemptions
        self.state = state

    def register(self, router: Router) -> None:
        """Add the admin routes to ``router``."""
        for method, path, handler in (
            ("POST", "faults", self.add_fault), ("GET", "faults", self.list_faults),
            ("DELETE", "faults", self.clear_faults), ("GET", "requests", self.list_requests),
            ("DELETE", "requests", self.clear_requests), ("GET", "settings", self.get_settings),
            ("POST", "settings", self.update_settings), ("POST", "preemptions", self.preempt),
            ("GET", "nodelives", self.node_lives),
        ):
            router.add(method, f"/_admin/{path}", handler)

    def add_fault(self, request: Request) -> Response:
        body = request.json_object()
        unknown = set(body) - set(FAULT_OPTIONS) - {"kind"}
        if unknown:
            raise BatchApiError("InvalidRequestBody", f"Unknown fault options: {sorted(unknown)}")
        options = {key: value for key, value in body.items() if key != "kind"}
        try:
            rule = self.faults.add(cast(FaultKind, str(body.get("kind"))), **options)
        except (ValueError, TypeError) as exc:
            raise BatchApiError("InvalidRequestBody", str(exc)) from exc
        return Response.json(201, rule.describe())

    def list_faults(self, request: Request) -> Response:
        return Response.json(200, {"value": self.faults.describe()})

    def clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response.empty(204)

    def list_requests(self, request: Request) -> Response:
        records = self.log.entries(method=request.param("method"), path_pattern=request.param("path"))
        return Response.json(200, {"value": [record.as_json() for record in records], "count": len(records)})

    def clear_requests(self, request: Request) -> Response:
        self.log.clear()
        return Response.empty(204)

    def get_settings(self, request: Request) -> Response:
        return Response.json(200, self.settings.as_json())

    def update_settings(self, request: Request) -> Response:
        try:
            self.settings.update(request.json_object())
        except (ValueError, TypeError) as exc:
            raise BatchApiError("InvalidRequestBody", str(exc)) from exc
        return Response.json(200, self.settings.as_json())

    def preempt(self, request: Request) -> Response:
        body = request.json_object()
        unknown = set(body) - {"poolId", "nodeId", "jobId", "taskId", "restoreAfterSeconds"}
        if unknown or not isinstance(body.get("poolId"), str):
            raise BatchApiError("InvalidRequestBody", f"Give poolId (and nodeId, or jobId and taskId, and "
                                                      f"restoreAfterSeconds); unknown: {sorted(unknown)}")
        restore = body.get("restoreAfterSeconds", self.settings.preemption_restore_s)
        if restore is not None and (isinstance(restore, bool) or not isinstance(restore, (int, float))):
            raise BatchApiError("InvalidRequestBody", "restoreAfterSeconds must be a number of seconds or null")
        done = self.preemptions.preempt(body["poolId"], body.get("nodeId"), job_id=body.get("jobId"),
                                        task_id=body.get("taskId"),
                                        restore_after_s=None if restore is None else float(restore))
        return Response.json(201, done.as_json())

    def node_lives(self, request: Request) -> Response:
        pool_id = request.param("poolId")
        if not pool_id:
            raise BatchApiError("InvalidRequestBody", "Give ?poolId=")
        with self.state.lock:
            lives = [life.as_json() for life in lives_of(self.state, pool_id)]
        return Response.json(200, {"value": lives})
