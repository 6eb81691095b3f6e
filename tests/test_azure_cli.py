"""The `orch` command line on an Azure pool, end to end against the local Batch service and
Azurite: pool create → jobs add --tail → sweep → logs → data → down; no secret is ever shown."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from tests.batch_service import BatchService, start_batch_service
from tests.support.azurite import Azurite, start_azurite

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

POOL = """id: clipool
backend: azure
nodes: 2
azure: {vm_size: D2s_v5, node_fill: pack}
"""
HELLO = """id: hello
pool: clipool
tasks:
  - id: greet
    command: echo "hello from $ORCH_TASK_ID"; cat notes.txt
  - id: listed
    command: [printf, "%s\\n", "two words"]
    depends_on: [greet]
"""
SWEEP = """id: grid
pool: clipool
workdir: null
tasks:
  - id: trial
    command: |
      echo "x={{x}}"; echo '{"score": {{x}}}' >> "$ORCH_METRICS_FILE"
    search_space:
      x: {choice: [1, 2, 3]}
"""


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    with start_batch_service(tmp_path_factory.mktemp("batch")) as batch, \
            start_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
        yield batch, azurite


@pytest.fixture
def config(tmp_path: Path, services: tuple[BatchService, Azurite]) -> Path:
    batch, azurite = services
    (tmp_path / "jobs").mkdir()
    (tmp_path / "pool.yaml").write_text(POOL)
    (tmp_path / "jobs" / "hello.yaml").write_text(HELLO)
    (tmp_path / "jobs" / "grid.yaml").write_text(SWEEP)
    (tmp_path / "notes.txt").write_text("notes from the workdir\n")
    (tmp_path / "credentials.yaml").write_text(
        f"batch: {{account: {batch.account}, url: '{batch.url}', key: '{batch.key}'}}\n"
        f"storage: {{connection_string: '{azurite.connection_string}'}}\n")
    return tmp_path


class Orch:
    """Runs `orch` in a subprocess and keeps everything it printed, to scan for secrets."""

    def __init__(self, config: Path, home: Path) -> None:
        self.config, self.printed = config, []
        self.env = {**os.environ, "ORCH_HOME": str(home), "ORCH_CONFIG_DIR": str(config)}
        for name in ("ORCH_BATCH_KEY", "ORCH_STORAGE_KEY", "ORCH_CREDENTIALS_FILE"):
            self.env.pop(name, None)

    def __call__(self, *args: str, code: int = 0) -> str:
        result = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                                cwd=self.config, env=self.env, timeout=300)
        self.printed.append(result.stdout + result.stderr)
        assert result.returncode == code, f"orch {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr


def test_the_cli_runs_a_job_and_a_sweep_on_azure_then_removes_everything(
        config: Path, tmp_path_factory: pytest.TempPathFactory, services: tuple[BatchService, Azurite]) -> None:
    batch, azurite = services
    orch = Orch(config, tmp_path_factory.mktemp("home"))
    assert "allocation steady: 2/2 nodes (2 idle)" in orch("pool", "create")
    added = orch("jobs", "add", "jobs/hello.yaml", "--tail")
    assert "[greet] hello from greet" in added and "[greet] notes from the workdir" in added
    assert "[listed] two words" in added and "job hello completed: 2 succeeded" in added
    swept = orch("sweep", "jobs/grid.yaml", "--tail")
    assert "3 trial(s) added" in swept and {f"x={x}" for x in (1, 2, 3)} <= {l.split("] ")[-1] for l in swept.splitlines()}
    assert orch("logs", "grid", "trial-00001") == "x=2\n"
    assert orch("logs", "grid", "trial-00002", "--file", "metrics").strip() == '{"score": 3}'
    shown = json.loads(orch("jobs", "show", "hello", "-o", "json"))
    assert [(t["id"], t["state"], t["exit_code"]) for t in shown["tasks"]] == [
        ("greet", "succeeded", 0), ("listed", "succeeded", 0)]
    pools = json.loads(orch("pool", "list", "-o", "json"))
    assert [(p["id"], p["backend"], p["state"]) for p in pools] == [("clipool", "azure", "ready")]
    assert orch("pool", "create", "--dry-run").startswith("pool clipool: Standard_D2s_v5 on Azure Batch")

    (config / "inputs").mkdir()
    (config / "inputs" / "a.csv").write_text("1,2\n")
    assert "1 file(s) uploaded, 0 unchanged" in orch("data", "upload", "inputs")
    assert "0 file(s) uploaded, 1 unchanged" in orch("data", "upload", "inputs")
    listed = {b["name"] for b in json.loads(orch("data", "ls", "-o", "json"))["blobs"]}
    assert {"data/inputs/a.csv", "jobs/hello/greet/stdout.txt", "jobs/grid/trial-00000/metrics.jsonl"} <= listed
    workdir_zip = next(name for name in listed if name.startswith("inputs/") and name.endswith(".zip"))
    orch("data", "download", workdir_zip, "fetched")
    with zipfile.ZipFile(io.BytesIO((config / "fetched" / Path(workdir_zip).name).read_bytes())) as snapshot:
        assert "notes.txt" in snapshot.namelist() and "credentials.yaml" not in snapshot.namelist()
    orch("data", "download", "jobs/hello/greet/", "out")
    assert (config / "out" / "stdout.txt").read_text().startswith("hello from greet")

    removed = orch("down", "-y", "--storage")
    assert {"removed job hello", "removed job grid", "removed pool clipool",
            "removed blob container orch-clipool"} <= set(removed.splitlines())
    client = BatchClient(batch.url, AzureNamedKeyCredential(batch.account, batch.key))
    assert list(client.list_pools()) == [] and list(client.list_jobs()) == []
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert [c.name for c in blobs.list_containers(name_starts_with="orch-")] == []
    assert "nothing to remove" in orch("down", "-y")
    everything = "".join(orch.printed)
    assert batch.key not in everything and azurite.key not in everything and "sig=" not in everything


def test_a_refused_key_exits_8_without_showing_it(config: Path, tmp_path_factory: pytest.TempPathFactory,
                                                   services: tuple[BatchService, Azurite]) -> None:
    batch, _ = services
    wrong = "d3Jvbmcta2V5LXRoYXQtbXVzdC1ub3QtYmUtc2hvd24="
    text = (config / "credentials.yaml").read_text().replace(batch.key, wrong)
    (config / "credentials.yaml").write_text(text)
    orch = Orch(config, tmp_path_factory.mktemp("home"))
    out = orch("pool", "create", code=8)
    assert "AuthenticationFailed" in out and wrong not in out
    assert "clipool" not in orch("pool", "list")  # nothing was recorded for the refused pool
