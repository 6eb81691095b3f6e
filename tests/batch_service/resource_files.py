"""Downloading a task's ``resourceFiles`` before it runs.

``httpUrl`` fetches one URL to ``filePath``; ``storageContainerUrl`` (a SAS URL) and
``autoStorageContainerName`` (the account's linked storage) fetch every blob (under
``blobPrefix``) into the ``filePath`` directory, keeping blob names as relative paths.
Failures raise ``ResourceFileError`` carrying Batch's failure code; all are user errors.
"""
from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .settings import AutoStorage

DOWNLOAD_TIMEOUT_S = 60.0
_HTTP_FAILURE_CODES = {404: "BlobNotFound", 403: "BlobAccessDenied", 401: "BlobAccessDenied"}


class ResourceFileError(Exception):
    """A resource file could not be fetched; ``code`` is the Batch failure code."""

    def __init__(self, code: str, message: str, source: str) -> None:
        super().__init__(message)
        self.code = code
        self.source = source

    def failure_info(self) -> dict[str, Any]:
        """The ``failureInfo`` of the task."""
        return {
            "category": "usererror",
            "code": self.code,
            "message": str(self),
            "details": [{"name": "ResourceFileUrl", "value": self.source}],
        }


def _target(base_dir: Path, relative: str) -> Path:
    target = (base_dir / relative).resolve()
    if not target.is_relative_to(base_dir.resolve()):
        message = f"filePath {relative!r} leaves the task directory"
        raise ResourceFileError("ResourceFileCreateFailed", message, relative)
    return target


def _fetch(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
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
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                document = ElementTree.fromstring(response.read())
        except urllib.error.HTTPError as exc:
            code = {404: "BlobNotFound", 403: "BlobAccessDenied"}.get(exc.code, "ResourceContainerListMiscError")
            message = f"Listing {container_url} failed with HTTP {exc.code}"
            raise ResourceFileError(code, message, container_url) from exc
        except (urllib.error.URLError, OSError, ElementTree.ParseError) as exc:
            raise ResourceFileError("ResourceContainerListMiscError", f"Listing {container_url} failed: {exc}",
                                    container_url) from exc
        names.extend(element.text or "" for element in document.iter("Name") if element.text)
        marker = document.findtext("NextMarker") or ""
        if not marker:
            return names


def _blob_url(container_url: str, blob_name: str) -> str:
    parts = urlsplit(container_url)
    path = parts.path.rstrip("/") + "/" + quote(blob_name)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _download_one(resource: dict[str, Any], base_dir: Path, auto_storage: AutoStorage | None) -> None:
    container_url = resource.get("storageContainerUrl")
    if resource.get("autoStorageContainerName"):
        if auto_storage is None:
            name = str(resource["autoStorageContainerName"])
            raise ResourceFileError("AutoStorageNotConfigured", "The account has no linked auto-storage account", name)
        container_url = auto_storage.container_url(str(resource["autoStorageContainerName"]))
    if resource.get("httpUrl"):
        url = str(resource["httpUrl"])
        relative = str(resource.get("filePath") or os.path.basename(urlsplit(url).path))
        targets = [(url, _target(base_dir, relative))]
    elif container_url:
        directory = str(resource.get("filePath") or "")
        names = _list_blobs(str(container_url), str(resource.get("blobPrefix") or ""))
        targets = [(_blob_url(str(container_url), name), _target(base_dir, os.path.join(directory, name)))
                   for name in names]
    else:
        raise ResourceFileError("ResourceFileCreateFailed", "The resource file has no source", str(resource))
    for url, target in targets:
        _fetch(url, target)
        if resource.get("fileMode"):
            target.chmod(int(str(resource["fileMode"]), 8))


def download_resource_files(resources: list[dict[str, Any]] | None, base_dir: Path,
                            auto_storage: AutoStorage | None) -> None:
    """Fetch every resource file into ``base_dir``; ResourceFileError on the first failure."""
    base_dir.mkdir(parents=True, exist_ok=True)
    for resource in resources or []:
        _download_one(resource, base_dir, auto_storage)
