"""The node-side checkpoint helper (``node_checkpoint``) against Azurite: restore before, save while
running and at exit, atomic commits, attempts that follow the task, and no SAS in its output."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from orchestrator.backends.azure import checkpoints, naming, node_checkpoint
from orchestrator.backends.azure.blob_store import BlobStore
from orchestrator.backends.azure.credentials import StorageAccount
from tests.support.azurite import start_azurite

pytestmark = pytest.mark.slow
HELPER = Path(node_checkpoint.__file__)
CONTAINER = "orch-ckpt"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlobStore]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
        blobs = BlobStore(StorageAccount.model_validate({"connection_string": azurite.connection_string}))
        blobs.ensure_container(CONTAINER)
        yield blobs


def url_for(store: BlobStore, task_id: str) -> str:
    return checkpoints.task_url(store, CONTAINER, "job", task_id, datetime.now(timezone.utc) + timedelta(hours=1))


def run(url: str, folder: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "ORCH_CHECKPOINT_URL": url, "ORCH_CHECKPOINT_DIR": str(folder), **env}
    return subprocess.run([sys.executable, str(HELPER), "run", "--", "/bin/sh", "-c", script], env=environ,
                          capture_output=True, text=True, timeout=60)


def saved(store: BlobStore, task_id: str) -> dict[str, str]:
    """The checkpoint blob's metadata ({} while there is no blob)."""
    blob = store.service.get_blob_client(CONTAINER, naming.checkpoint_blob("job", task_id))
    try:
        return {key.lower(): value for key, value in blob.get_blob_properties().metadata.items()}
    except ResourceNotFoundError:
        return {}


def test_a_checkpoint_is_restored_on_any_node_and_counts_attempts(store: BlobStore, tmp_path: Path) -> None:
    url = url_for(store, "t1")
    write = ('echo "attempt=$ORCH_TASK_ATTEMPT url=${ORCH_CHECKPOINT_URL:-unset}"; n=$(cat "$ORCH_CHECKPOINT_DIR/n" '
             '2>/dev/null || echo 0); echo $((n+1)) > "$ORCH_CHECKPOINT_DIR/.n"; mv "$ORCH_CHECKPOINT_DIR/.n" '
             '"$ORCH_CHECKPOINT_DIR/n"; mkdir -p "$ORCH_CHECKPOINT_DIR/sub"; echo x > "$ORCH_CHECKPOINT_DIR/sub/f"')
    first = run(url, tmp_path / "node-a" / "checkpoint", write)
    assert first.returncode == 0 and first.stdout.strip() == "attempt=1 url=unset", first.stderr
    assert saved(store, "t1")["orchattempts"] == "1"
    second = run(url, tmp_path / "node-b" / "checkpoint", write + "; exit 3")  # another node: nothing local
    assert second.returncode == 3 and second.stdout.strip() == "attempt=2 url=unset"
    assert "restored 2 file(s)" in second.stderr and "sig=" not in second.stderr + second.stdout
    assert (tmp_path / "node-b" / "checkpoint" / "n").read_text().strip() == "2"
    third = run(url, tmp_path / "node-a" / "checkpoint", 'cat "$ORCH_CHECKPOINT_DIR/n"')
    assert third.stdout.strip() == "2" and saved(store, "t1")["orchattempts"] == "3"


def test_a_save_cut_off_midway_is_never_restored(store: BlobStore, tmp_path: Path) -> None:
    url = url_for(store, "t2")
    assert run(url, tmp_path / "a", 'echo good > "$ORCH_CHECKPOINT_DIR/state"').returncode == 0
    blob = node_checkpoint.Blob(url)
    blob._request("PUT", "comp=block&blockid=" + "YWJjZGVmZ2g%3D", b"half of a new zip")  # never committed
    restored = run(url, tmp_path / "b", 'cat "$ORCH_CHECKPOINT_DIR/state"')
    assert restored.stdout.strip() == "good"


def test_writes_that_complete_are_saved_while_the_task_runs(store: BlobStore, tmp_path: Path) -> None:
    url = url_for(store, "t3")
    script = ('for i in 1 2 3; do echo $i > "$ORCH_CHECKPOINT_DIR/.e"; mv "$ORCH_CHECKPOINT_DIR/.e" '
              '"$ORCH_CHECKPOINT_DIR/epoch"; sleep 2.5; done')
    proc = subprocess.Popen([sys.executable, str(HELPER), "run", "--", "/bin/sh", "-c", script],
                            env={**os.environ, "ORCH_CHECKPOINT_URL": url, "ORCH_CHECKPOINT_DIR": str(tmp_path / "c")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while "orchsha256" not in saved(store, "t3"):
        assert time.monotonic() < deadline and proc.poll() is None, "no save while the task ran"
        time.sleep(0.2)
    proc.kill()  # like a preempted node: no save at exit
    proc.wait()
    assert run(url, tmp_path / "d", 'cat "$ORCH_CHECKPOINT_DIR/epoch"').stdout.strip() in ("1", "2")


def test_an_unreadable_checkpoint_stops_the_attempt_instead_of_starting_over(store: BlobStore, tmp_path: Path) -> None:
    url = url_for(store, "t4")
    assert run(url, tmp_path / "a", 'echo keep > "$ORCH_CHECKPOINT_DIR/state"').returncode == 0
    metadata = saved(store, "t4")
    node_checkpoint.Blob(url).set_metadata({**metadata, "orchsha256": hashlib.sha256(b"other").hexdigest()})
    failed = run(url, tmp_path / "b", 'echo started; echo lost > "$ORCH_CHECKPOINT_DIR/state"')
    assert failed.returncode == node_checkpoint.RESTORE_FAILED and failed.stdout == ""
    assert "does not match" in failed.stderr and "sig=" not in failed.stderr


def test_the_helper_is_uploaded_once_by_content(store: BlobStore) -> None:
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    first, again = checkpoints.helper_url(store, CONTAINER, expiry), checkpoints.helper_url(store, CONTAINER, expiry)
    digest = hashlib.sha256(HELPER.read_bytes()).hexdigest()
    assert f"/inputs/{digest}.py?" in first and first.split("?")[0] == again.split("?")[0]
