"""orch's checkpoint helper on Azure Batch nodes: ``python3 .orch-checkpoint.py run -- COMMAND...``.

A task's command line runs its command through this file (uploaded once by content hash and given
to every task as a resource file; see ``checkpoints``). It needs only Python 3's standard
library, not orch. The contract is the Ray backend's (``orchestrator.backends.ray.checkpoints``):

- ``ORCH_CHECKPOINT_DIR`` is restored before the command starts: the folder is emptied and
  filled with the task's last saved checkpoint, if there is one. A checkpoint that exists but
  cannot be read ends the attempt (exit 75) instead of starting over, which would overwrite it.
- While the command runs the folder is looked at every ``POLL_SECONDS``; once what it holds has
  changed and then stayed the same for one look (a write completed), or has changed and
  ``ORCH_CHECKPOINT_INTERVAL`` seconds (default 600) passed since the last save, it is zipped
  and saved; and once more when the command exits. Scripts should write files atomically
  (temporary name, then rename), as ``jobs/train_digits.py`` does.
- Saving is atomic: the zip goes up as uncommitted blocks, committed by one Put Block List,
  which replaces the blob's content at once, so a save cut off midway (a preempted node) leaves
  the previous checkpoint whole. Its SHA-256 travels in the blob's metadata; a restore checks it.
- The blob's metadata also counts attempts: ``ORCH_TASK_ATTEMPT`` follows a task that Batch
  requeued or retried on another node.

The blob's SAS URL (read, create, write; that one blob; expiring with the job) comes in
``ORCH_CHECKPOINT_URL``. It is removed from the command's environment and never printed.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any

URL_ENV, DIR_ENV, INTERVAL_ENV, ATTEMPT_ENV = ("ORCH_CHECKPOINT_URL", "ORCH_CHECKPOINT_DIR",
                                                "ORCH_CHECKPOINT_INTERVAL", "ORCH_TASK_ATTEMPT")
POLL_SECONDS = 1.0
BLOCK_BYTES = 4 * 1024 * 1024
STORAGE_VERSION = "2023-11-03"
SHA_KEY, ATTEMPTS_KEY = "orchsha256", "orchattempts"
RESTORE_FAILED = 75
TRIES = 4
Signature = tuple[tuple[str, int, int], ...]


def log(message: str) -> None:
    print(f"orch checkpoint: {message}", file=sys.stderr, flush=True)


class Blob:
    """One block blob behind a SAS URL (Blob service REST, ``x-ms-version`` 2023-11-03)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _request(self, method: str, query: str = "", data: Any = None, headers: dict[str, str] | None = None,
                 ok: tuple[int, ...] = (200, 201)) -> tuple[int, dict[str, str], bytes]:
        url = self.url + ("&" + query if query else "")
        for attempt in range(TRIES):
            request = urllib.request.Request(url, data=data, method=method,
                                             headers={"x-ms-version": STORAGE_VERSION, **(headers or {})})
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
            except urllib.error.HTTPError as error:
                if error.code in ok:
                    return error.code, {k.lower(): v for k, v in error.headers.items()}, b""
                if error.code not in (408, 429, 500, 502, 503, 504) or attempt + 1 == TRIES:
                    raise OSError(f"{method} {self.name()} answered HTTP {error.code} {error.reason}") from None
            except (urllib.error.URLError, OSError) as error:
                if attempt + 1 == TRIES:
                    raise OSError(f"{method} {self.name()} failed: {getattr(error, 'reason', error)}") from None
            time.sleep(0.5 * 2 ** attempt)
        raise OSError(f"{method} {self.name()} failed")

    def name(self) -> str:
        """The blob's path, without the SAS query (safe to print)."""
        return urllib.parse.urlsplit(self.url).path

    def properties(self) -> dict[str, str] | None:
        """The blob's headers (metadata as ``x-ms-meta-*``), or None when it does not exist."""
        status, headers, _ = self._request("HEAD", ok=(200, 404))
        return None if status == 404 else headers

    def download(self, target: Path) -> str:
        """Stream the blob to ``target``; returns its SHA-256."""
        digest = hashlib.sha256()
        request = urllib.request.Request(self.url, headers={"x-ms-version": STORAGE_VERSION})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer, target.open("wb") as sink:
                for chunk in iter(lambda: answer.read(BLOCK_BYTES), b""):
                    digest.update(chunk)
                    sink.write(chunk)
        except urllib.error.HTTPError as error:
            raise OSError(f"GET {self.name()} answered HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            raise OSError(f"GET {self.name()} failed: {error.reason}") from None
        return digest.hexdigest()

    def set_metadata(self, metadata: dict[str, str]) -> None:
        self._request("PUT", "comp=metadata", b"", {f"x-ms-meta-{k}": v for k, v in metadata.items()})

    def create_empty(self, metadata: dict[str, str]) -> None:
        self._request("PUT", "", b"", {"x-ms-blob-type": "BlockBlob", "If-None-Match": "*",
                                       **{f"x-ms-meta-{k}": v for k, v in metadata.items()}}, ok=(201, 409, 412))

    def commit_file(self, path: Path, metadata: dict[str, str]) -> None:
        """Upload ``path`` as uncommitted blocks, then commit them at once (see the module docstring)."""
        prefix, ids = uuid.uuid4().hex[:16], []
        with path.open("rb") as source:
            for index, chunk in enumerate(iter(lambda: source.read(BLOCK_BYTES), b"")):
                block_id = base64.b64encode(f"{prefix}-{index:08d}".encode()).decode()
                self._request("PUT", "comp=block&blockid=" + urllib.parse.quote(block_id, safe=""), chunk)
                ids.append(block_id)
        body = ('<?xml version="1.0" encoding="utf-8"?><BlockList>'
                + "".join(f"<Latest>{block_id}</Latest>" for block_id in ids) + "</BlockList>").encode()
        headers = {"Content-Type": "application/xml", "x-ms-blob-content-type": "application/zip",
                   **{f"x-ms-meta-{k}": v for k, v in metadata.items()}}
        self._request("PUT", "comp=blocklist", body, headers)


def signature(folder: Path) -> Signature:
    """What the folder holds, cheaply: (relative path, size, mtime) of every file, sorted."""
    out = []
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            info = path.stat()
            out.append((path.relative_to(folder).as_posix(), info.st_size, info.st_mtime_ns))
    return tuple(sorted(out))


class Checkpoint:
    """Restores and saves one attempt's checkpoint folder (see the module docstring)."""

    def __init__(self, folder: Path, blob: Blob, interval: float) -> None:
        self.folder, self.blob, self.interval = folder, blob, interval
        self.attempt, self.saved, self.saved_at = 1, (), time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def restore(self) -> None:
        """Empty the folder, fill it with the last saved checkpoint, count this attempt."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        headers = self.blob.properties()
        if headers is None:
            self.blob.create_empty({ATTEMPTS_KEY: "1"})
            return
        self.attempt = int(headers.get(f"x-ms-meta-{ATTEMPTS_KEY}") or 0) + 1
        sha = headers.get(f"x-ms-meta-{SHA_KEY}")
        self.blob.set_metadata({ATTEMPTS_KEY: str(self.attempt), **({SHA_KEY: sha} if sha else {})})
        if not sha:
            return
        with tempfile.TemporaryDirectory(dir=self.folder.parent, prefix=".orch-restore-") as scratch:
            archive = Path(scratch) / "checkpoint.zip"
            if self.blob.download(archive) != sha:
                raise OSError(f"{self.blob.name()} does not match the SHA-256 it was saved with")
            with zipfile.ZipFile(archive) as unpacked:
                unpacked.extractall(self.folder)
        self.saved = signature(self.folder)
        log(f"restored {len(self.saved)} file(s) into {self.folder} (attempt {self.attempt})")

    def watch(self) -> None:
        previous = self.saved
        while not self._stop.wait(POLL_SECONDS):
            previous = self.save_if_changed(stable_since=previous)

    def finish(self, watcher: threading.Thread) -> None:
        self._stop.set()
        watcher.join()
        self.save_if_changed(stable_since=None)

    def save_if_changed(self, stable_since: Signature | None) -> Signature:
        """Save when the folder differs from what was saved and either equals the previous look's
        view, or the interval passed (``stable_since`` None: at exit). Returns the current view."""
        try:
            current = signature(self.folder)
        except OSError:
            return ()
        due = stable_since is None or current == stable_since or time.monotonic() - self.saved_at >= self.interval
        if current and current != self.saved and due:
            with self._lock:
                try:
                    self._save(current)
                except (OSError, zipfile.BadZipFile) as error:  # the next look saves again
                    log(f"could not save {self.folder}: {error}")
        return current

    def _save(self, current: Signature) -> None:
        with tempfile.NamedTemporaryFile(dir=self.folder.parent, prefix=".orch-save-", suffix=".zip") as staging:
            digest = hashlib.sha256()
            with zipfile.ZipFile(staging.name, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for relative, _, _ in current:
                    archive.write(self.folder / relative, relative)
            with open(staging.name, "rb") as packed:
                for chunk in iter(lambda: packed.read(BLOCK_BYTES), b""):
                    digest.update(chunk)
            self.blob.commit_file(Path(staging.name), {SHA_KEY: digest.hexdigest(), ATTEMPTS_KEY: str(self.attempt)})
        self.saved, self.saved_at = current, time.monotonic()


def run(command: list[str]) -> int:
    """Restore, run ``command`` while saving, save at exit; the command's exit status."""
    url = os.environ.pop(URL_ENV, "")
    folder = Path(os.environ.get(DIR_ENV) or "checkpoint")
    checkpoint = Checkpoint(folder, Blob(url), float(os.environ.get(INTERVAL_ENV) or 600))
    try:
        checkpoint.restore()
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        log(f"could not restore the task's checkpoint: {error}; not starting over, which would overwrite it")
        return RESTORE_FAILED
    env = {**os.environ, ATTEMPT_ENV: str(checkpoint.attempt)}
    child = subprocess.Popen(command, env=env)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: child.send_signal(number))
    watcher = threading.Thread(target=checkpoint.watch, name="checkpoint-watch", daemon=True)
    watcher.start()
    code = child.wait()
    checkpoint.finish(watcher)
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[:2] != ["run", "--"]:
        log("usage: .orch-checkpoint.py run -- COMMAND [ARG...]")
        return 2
    return run(args[2:])


if __name__ == "__main__":
    sys.exit(main())
