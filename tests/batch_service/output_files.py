"""Uploading a task's ``outputFiles`` to blob containers (SAS URLs) after it ends.

``filePattern`` is relative to the working directory (``../stdout.txt`` reaches the task
dir) and may use ``*``, ``?``, ``[...]`` and ``**``. Without wildcards, ``destination.container.path``
names the blob; with wildcards it is a virtual directory prepended to each file's path
relative to the pattern's fixed leading part. Each file is sent as one Put Blob
(``x-ms-blob-type: BlockBlob``). Progress is logged to ``fileuploadout.txt``/``fileuploaderr.txt``
in the task directory, as the Batch agent does.
"""
from __future__ import annotations

import glob
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

UPLOAD_TIMEOUT_S = 60.0
STORAGE_API_VERSION = "2023-11-03"
_WILDCARDS = set("*?[")


class OutputFileError(Exception):
    """An upload failed; ``failure_info()`` is what the task reports."""

    def failure_info(self) -> dict[str, Any]:
        return {"category": "usererror", "code": "FileUploadMiscError", "message": str(self)}


def should_upload(condition: str | None, succeeded: bool) -> bool:
    """Whether ``uploadCondition`` asks for an upload given the task outcome."""
    condition = (condition or "taskcompletion").lower()
    return condition == "taskcompletion" or (condition == "tasksuccess") == succeeded


def matching_files(pattern: str, working_dir: Path) -> list[tuple[Path, str]]:
    """Files matching ``pattern`` and each one's name relative to the pattern's fixed part."""
    absolute = os.path.normpath(os.path.join(working_dir, pattern))
    parts = Path(absolute).parts
    fixed = []
    for part in parts:
        if _WILDCARDS & set(part):
            break
        fixed.append(part)
    base = Path(*fixed) if len(fixed) < len(parts) else Path(absolute).parent
    matches = sorted(Path(path) for path in glob.glob(absolute, recursive=True) if os.path.isfile(path))
    return [(path, path.relative_to(base).as_posix()) for path in matches]


def blob_name(pattern: str, destination_path: str | None, relative_name: str) -> str:
    """The blob a matched file goes to."""
    if not (_WILDCARDS & set(pattern)):
        return destination_path or relative_name
    return f"{destination_path.rstrip('/')}/{relative_name}" if destination_path else relative_name


def put_blob(container_url: str, name: str, data: bytes, extra_headers: dict[str, str]) -> None:
    """Put Blob ``name`` into the container at ``container_url`` (SAS in its query)."""
    parts = urlsplit(container_url)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/" + quote(name), parts.query, ""))
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": STORAGE_API_VERSION,
               "Content-Type": "application/octet-stream", **extra_headers}
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=UPLOAD_TIMEOUT_S):
            pass
    except urllib.error.HTTPError as exc:
        raise OutputFileError(f"Uploading {name} failed with HTTP {exc.code}: {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise OutputFileError(f"Uploading {name} failed: {exc}") from exc


def _upload_one(output: dict[str, Any], working_dir: Path, log: Any) -> None:
    container = ((output.get("destination") or {}).get("container")) or {}
    if not container.get("containerUrl"):
        raise OutputFileError(f"Output file {output.get('filePattern')!r} has no destination container URL")
    headers = {str(h["name"]): str(h.get("value") or "") for h in container.get("uploadHeaders") or []}
    pattern = str(output.get("filePattern") or "")
    for path, relative in matching_files(pattern, working_dir):
        name = blob_name(pattern, container.get("path"), relative)
        put_blob(str(container["containerUrl"]), name, path.read_bytes(), headers)
        log.write(f"Uploaded {path} to blob {name}\n")


def upload_output_files(outputs: list[dict[str, Any]] | None, *, working_dir: Path, task_dir: Path,
                        succeeded: bool) -> None:
    """Upload every output whose condition fits; OutputFileError on the first failure."""
    selected = [output for output in outputs or []
                if should_upload((output.get("uploadOptions") or {}).get("uploadCondition"), succeeded)]
    if not selected:
        return
    with open(task_dir / "fileuploadout.txt", "a") as log, open(task_dir / "fileuploaderr.txt", "a") as errors:
        for output in selected:
            try:
                _upload_one(output, working_dir, log)
            except OutputFileError as exc:
                errors.write(f"{exc}\n")
                raise
