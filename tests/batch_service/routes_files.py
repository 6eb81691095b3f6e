"""File routes of tasks (``/jobs/{j}/tasks/{t}/files``) and nodes (``/pools/{p}/nodes/{n}/files``).

Task file names are relative to the task directory (``stdout.txt``, ``wd/out.bin``); node
file names are relative to the node root (``startup/stderr.txt``, ``workitems/...``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .context import ServiceContext
from .errors import BatchApiError
from .files import file_url, find_entry, list_entries, read_range
from .http_messages import Request, Response
from .listing import list_response
from .responses import status_only
from .routing import Router


class FileRoutes:
    """Handlers for listing, reading, probing and deleting task and node files."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.state = ctx.state

    def register(self, router: Router) -> None:
        """Add the file routes to ``router``."""
        for prefix in ("/jobs/{jobId}/tasks/{taskId}", "/pools/{poolId}/nodes/{nodeId}"):
            router.add("GET", f"{prefix}/files", self.list)
            router.add("GET", f"{prefix}/files/{{filePath*}}", self.download)
            router.add("HEAD", f"{prefix}/files/{{filePath*}}", self.properties)
            router.add("DELETE", f"{prefix}/files/{{filePath*}}", self.delete)

    def _root(self, request: Request) -> tuple[Path, str]:
        """(directory, files collection URL) the request addresses."""
        params = request.path_params
        with self.state.lock:
            if "jobId" in params:
                task = self.state.task(params["jobId"], params["taskId"])
                if task.task_dir is None:
                    raise BatchApiError("TaskFilesUnavailable", values=[("TaskId", task.id)])
                return task.task_dir, f"{task.url(self.state.base_url)}/files"
            node = self.state.node(params["poolId"], params["nodeId"])
            return node.root_dir, f"{node.url(self.state.base_url)}/files"

    def list(self, request: Request) -> Response:
        root, base = self._root(request)
        recursive = (request.param("recursive") or "false").lower() == "true"
        items = [entry.to_json(file_url(base, entry.name)) for entry in list_entries(root, recursive=recursive)]
        return list_response(request, items, metadata_name="files", max_page_size=self.state.settings.max_page_size)

    def download(self, request: Request) -> Response:
        root, base = self._root(request)
        entry = find_entry(root, request.path_params["filePath"])
        data = read_range(entry, request.header("ocp-range"))
        return Response(200, data, entry.headers(file_url(base, entry.name)))

    def properties(self, request: Request) -> Response:
        root, base = self._root(request)
        entry = find_entry(root, request.path_params["filePath"])
        headers = entry.headers(file_url(base, entry.name))
        headers["Content-Length"] = str(entry.size)
        return Response.empty(200, headers)

    def delete(self, request: Request) -> Response:
        root, _ = self._root(request)
        entry = find_entry(root, request.path_params["filePath"])
        if entry.is_directory:
            if (request.param("recursive") or "false").lower() != "true" and any(entry.path.iterdir()):
                message = "The directory is not empty; use recursive=true."
                raise BatchApiError("OperationInvalidForCurrentState", message)
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink()
        return status_only(200)
