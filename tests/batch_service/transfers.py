"""Task files through blob storage: ``resourceFiles`` in before a task runs, ``outputFiles`` out after.

``httpUrl`` fetches one URL to ``filePath``; ``storageContainerUrl`` (a SAS URL) and
``autoStorageContainerName`` (the account's linked storage) fetch every blob under ``blobPrefix``
into the ``filePath`` directory. An output ``filePattern`` is relative to ``wd`` and may use
``*``, ``?``, ``[...]``, ``**``; without wildcards ``destination.container.path`` names the blob,
with them it is a folder for the paths below the pattern's fixed part. Each file is one Put
Blob; progress goes to ``fileuploadout.txt``/``fileuploaderr.txt`` in the task directory.
Failures carry Batch's failure code; all are user errors.
"""
from __future__ import annotations

import glob
import os
import shutil
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .settings import AutoStorage

TIMEOUT_S = 60.0
STORAGE_API_VERSION = "2023-11-03"
_WILDCARDS = set("*?[")
_HTTP_FAILURE_CODES = {404: "BlobNotFound", 403: "BlobAccessDenied", 401: "BlobAccessDenied"}


class ResourceFileError(Exception):
    """A resource file could not be fetched; ``code`` is the Batch failure code."""

    def __init__(self, code: str, message: str, source: str) -> None:
        super().__init__(message)
        self.code, self.source = code, source

    def failure_info(self) -> dict[str, Any]:
        """The ``failureInfo`` of the task."""
        return {"category": "usererror", "code": self.code, "message": str(self),
                "details": [{"name": "ResourceFileUrl", "value": self.source}]}


class OutputFileError(Exception):
    """An upload failed; ``failure_info()`` is what the task reports."""

    def failure_info(self) -> dict[str, Any]:
        return {"category": "usererror", "code": "FileUploadMiscError", "message": str(self)}


def blob_url(container_url: str, blob_name: str) -> str:
    """URL of a blob in the container at ``container_url`` (its SAS query kept)."""
    parts = urlsplit(container_url)
    return urlunsplit((parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}/{quote(blob_name)}", parts.query, ""))


def _target(base_dir: Path, relative: str) -> Path:
    target = (base_dir / relative).resolve()
    if not target.is_relative_to(base_dir.resolve()):
        raise ResourceFileError("ResourceFileCreateFailed", f"filePath {relative!r} leaves the task directory",
                                relative)
    return target


def _fetch(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as sink:
                shutil.copyfileobj(response, sink)
    except urllib.error.HTTPError as exc:
        code = _HTTP_FAILURE_CODES.get(exc.code, "BlobDownloadMiscError")
        raise ResourceFileError(code, f"Downloading {url} failed with HTTP {exc.code}", url) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ResourceFileError("BlobDownloadMiscError", f"Downloading {url} failed: {exc}", url) from exc


def _list_blobs(container_url: str, prefix: str) -> list[str]:
    """Blob names in a container (SAS URL), following continuation markers."""
    parts = urlsplit(container_url)
    names: list[str] = []
    marker = ""
    while True:
        query = "&".join(filter(None, [parts.query, "restype=container&comp=list", f"prefix={quote(prefix)}",
                                       f"marker={quote(marker)}" if marker else ""]))
        try:
            url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                document = ElementTree.fromstring(response.read())
        except urllib.error.HTTPError as exc:
            code = {404: "BlobNotFound", 403: "BlobAccessDenied"}.get(exc.code, "ResourceContainerListMiscError")
            raise ResourceFileError(code, f"Listing {container_url} failed with HTTP {exc.code}",
                                    container_url) from exc
        except (urllib.error.URLError, OSError, ElementTree.ParseError) as exc:
            raise ResourceFileError("ResourceContainerListMiscError", f"Listing {container_url} failed: {exc}",
                                    container_url) from exc
        names.extend(element.text for element in document.iter("Name") if element.text)
        marker = document.findtext("NextMarker") or ""
        if not marker:
            return names


def download_resource_files(resources: list[dict[str, Any]] | None, base_dir: Path,
                            auto_storage: AutoStorage | None) -> None:
    """Fetch every resource file into ``base_dir``; ResourceFileError on the first failure."""
    base_dir.mkdir(parents=True, exist_ok=True)
    for resource in resources or []:
        container_url = resource.get("storageContainerUrl")
        if resource.get("autoStorageContainerName"):
            name = str(resource["autoStorageContainerName"])
            if auto_storage is None:
                raise ResourceFileError("AutoStorageNotConfigured", "The account has no linked storage", name)
            container_url = auto_storage.container_url(name)
        if resource.get("httpUrl"):
            url = str(resource["httpUrl"])
            targets = [(url, _target(base_dir, str(resource.get("filePath") or os.path.basename(urlsplit(url).path))))]
        else:
            directory, prefix = str(resource.get("filePath") or ""), str(resource.get("blobPrefix") or "")
            targets = [(blob_url(str(container_url), name), _target(base_dir, os.path.join(directory, name)))
                       for name in _list_blobs(str(container_url), prefix)]
        for url, target in targets:
            _fetch(url, target)
            if resource.get("fileMode"):
                target.chmod(int(str(resource["fileMode"]), 8))


def matching_files(pattern: str, working_dir: Path) -> list[tuple[Path, str]]:
    """Files matching ``pattern`` and each one's name relative to the pattern's fixed part."""
    absolute = os.path.normpath(os.path.join(working_dir, pattern))
    parts = Path(absolute).parts
    fixed = next((index for index, part in enumerate(parts) if _WILDCARDS & set(part)), None)
    base = Path(*parts[:fixed]) if fixed is not None else Path(absolute).parent
    matches = sorted(Path(path) for path in glob.glob(absolute, recursive=True) if os.path.isfile(path))
    return [(path, path.relative_to(base).as_posix()) for path in matches]


def put_blob(url: str, data: bytes, extra_headers: dict[str, str]) -> None:
    """Put Blob (a block blob) at ``url`` (SAS in its query); OutputFileError when refused."""
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": STORAGE_API_VERSION,
               "Content-Type": "application/octet-stream", **extra_headers}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT", headers=headers),
                                    timeout=TIMEOUT_S):
            pass
    except urllib.error.HTTPError as exc:
        raise OutputFileError(f"Uploading {urlsplit(url).path} failed with HTTP {exc.code}: {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise OutputFileError(f"Uploading {urlsplit(url).path} failed: {exc}") from exc


def upload_output_files(outputs: list[dict[str, Any]] | None, *, working_dir: Path, task_dir: Path,
                        succeeded: bool) -> None:
    """Upload every output whose ``uploadCondition`` fits the outcome; OutputFileError on the first failure."""
    def wanted(output: dict[str, Any]) -> bool:
        condition = str((output.get("uploadOptions") or {}).get("uploadCondition") or "taskcompletion").lower()
        return condition == "taskcompletion" or (condition == "tasksuccess") == succeeded

    selected = [output for output in outputs or [] if wanted(output)]
    if not selected:
        return
    with open(task_dir / "fileuploadout.txt", "a") as log, open(task_dir / "fileuploaderr.txt", "a") as errors:
        for output in selected:
            container = output["destination"]["container"]
            headers = {str(h["name"]): str(h.get("value") or "") for h in container.get("uploadHeaders") or []}
            pattern, path_option = str(output["filePattern"]), container.get("path")
            try:
                for path, relative in matching_files(pattern, working_dir):
                    if not _WILDCARDS & set(pattern):
                        name = path_option or relative
                    else:
                        name = f"{path_option.rstrip('/')}/{relative}" if path_option else relative
                    put_blob(blob_url(str(container["containerUrl"]), name), path.read_bytes(), headers)
                    log.write(f"Uploaded {path} to blob {name}\n")
            except OutputFileError as exc:
                errors.write(f"{exc}\n")
                raise
